"""studies.dicom.native: where the stored pixels of an uncompressed grey frame lie, without
pydicom; the values it leads to equal raw_frame()'s once rescaled; what it refuses."""

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from studies.dicom.native import META_VERSION, NativeFrames, locate, locate_bytes
from studies.dicom.raw import FORMAT_VERSION, raw_frame

from .dicom_samples import TEST_FILES, make_dataset


def _write(tmp_path, ds, *, implicit=False, name="a.dcm"):
    path = tmp_path / name
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True, implicit_vr=implicit or None, little_endian=True)
    return path


def _values(path, located, frame=0):
    """The stored bytes at the located place, masked and rescaled like the viewer does."""
    meta = located.meta
    data = path.read_bytes()
    start = located.offset + frame * located.frame_bytes
    stored = np.frombuffer(
        data[start : start + located.frame_bytes], dtype=np.dtype(meta["dtype"]).newbyteorder("<")
    ).astype(np.int64)
    if not meta["dtype"].startswith("int") and meta["bits_stored"] < meta["bits_allocated"]:
        stored &= (1 << meta["bits_stored"]) - 1
    values = stored * meta["rescale_slope"] + meta["rescale_intercept"]
    return values.reshape(meta["rows"], meta["columns"])


def _decoded(path, frame=0):
    body, meta = raw_frame(path, frame)
    return np.frombuffer(bytes(body), dtype=np.dtype(meta["dtype"]).newbyteorder("<")).reshape(
        meta["rows"], meta["columns"]
    ), meta


@pytest.mark.parametrize("implicit", [False, True])
def test_an_uncompressed_ct_slice_is_located_and_gives_raw_frames_values(tmp_path, implicit):
    pixels = (np.arange(40 * 30, dtype=np.uint16) % 4096).reshape(40, 30)
    ds = make_dataset(
        pixels,
        RescaleSlope="1",
        RescaleIntercept="-1024",
        WindowCenter=["40", "300"],
        WindowWidth=["400", "1500"],
        PixelSpacing=["0.5", "0.25"],
        BitsStored=12,
        HighBit=11,
    )
    path = _write(tmp_path, ds, implicit=implicit)
    located = locate(path)
    assert located is not None
    assert locate_bytes(path.read_bytes()) == located  # ingest's way: the bytes in hand
    assert locate_bytes(path.read_bytes()[:-2]) is None  # cut inside the pixels
    assert located.offset == pydicom.dcmread(path, defer_size=16)["PixelData"].file_tell
    assert located.frame_bytes == 40 * 30 * 2 and located.frames == 1
    meta = located.meta
    assert meta["rescaled"] is False and meta["min"] is None
    assert (meta["rows"], meta["columns"], meta["dtype"]) == (40, 30, "uint16")
    assert meta["windows"] == [[40.0, 400.0], [300.0, 1500.0]] and meta["window"] == [40.0, 400.0]
    assert meta["pixel_spacing"] == [0.5, 0.25] and meta["rescale_type"] == "HU"
    decoded, decoded_meta = _decoded(path)
    assert np.array_equal(_values(path, located), decoded)
    for key in ("rows", "columns", "windows", "pixel_spacing", "photometric", "invert", "frames"):
        assert meta[key] == decoded_meta[key], key


def test_high_bits_beyond_bits_stored_are_masked_as_pydicom_does(tmp_path):
    pixels = np.array([[0xF001, 5], [4095, 0x1000]], dtype=np.uint16)
    path = _write(tmp_path, make_dataset(pixels, BitsStored=12, HighBit=11))
    located = locate(path)
    assert np.array_equal(_values(path, located), _decoded(path)[0])


def test_frames_of_a_multi_frame_image_follow_each_other(tmp_path):
    stack = np.stack([np.full((8, 6), n * 100 - 50, dtype=np.int16) for n in range(4)])
    path = _write(tmp_path, make_dataset(stack, RescaleSlope="2", RescaleIntercept="1"))
    located = locate(path)
    assert located.frames == 4 and located.meta["dtype"] == "int16"
    for frame in range(4):
        assert np.array_equal(_values(path, located, frame), _decoded(path, frame)[0])


def test_sequences_of_undefined_length_are_walked_past(tmp_path):
    ds = make_dataset(np.ones((4, 4), dtype=np.uint16) * 9, WindowCenter="5", WindowWidth="10")
    inner = Dataset()
    inner.CodeValue = "X"
    item = Dataset()
    item.CodeMeaning = "outer"
    item.ConceptCodeSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item, Dataset()])
    ds["ProcedureCodeSequence"].is_undefined_length = True
    item["ConceptCodeSequence"].is_undefined_length = True
    path = _write(tmp_path, ds)
    raw = path.read_bytes()
    assert b"\xfe\xff\xdd\xe0" in raw  # a sequence delimiter: undefined lengths were written
    located = locate(path)
    assert located is not None and located.meta["window"] == [5.0, 10.0]
    assert np.array_equal(_values(path, located), _decoded(path)[0])


def test_monochrome1_and_a_fractional_rescale_are_described(tmp_path):
    ds = make_dataset(
        np.arange(16, dtype=np.uint16).reshape(4, 4),
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope="0.5",
        RescaleIntercept="-3.25",
    )
    path = _write(tmp_path, ds)
    located = locate(path)
    assert located.meta["invert"] is True and located.meta["window"] is None
    assert np.allclose(_values(path, located), _decoded(path)[0])


@pytest.mark.parametrize(
    "change",
    [
        "colour",
        "signed_narrow",
        "modality_lut",
        "big_endian",
        "compressed",
        "no_pixels",
        "short",
        "bits_32",
    ],
)
def test_what_it_does_not_handle_exactly_is_left_to_the_decoder(tmp_path, change):
    pixels = np.arange(16, dtype=np.uint16).reshape(4, 4)
    ds = make_dataset(pixels)
    if change == "colour":
        ds = make_dataset(np.zeros((4, 4, 3), dtype=np.uint8))
        ds.Rows, ds.Columns = 4, 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    elif change == "signed_narrow":
        ds = make_dataset(pixels.astype(np.int16), BitsStored=12, HighBit=11)
    elif change == "modality_lut":
        lut = Dataset()
        lut.LUTDescriptor = [16, 0, 16]
        lut.LUTData = np.arange(16, dtype="<u2").tobytes()
        ds.ModalityLUTSequence = Sequence([lut])
    elif change == "big_endian":
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    elif change == "compressed":
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif change == "no_pixels":
        del ds.PixelData
    elif change == "bits_32":
        ds = make_dataset(np.arange(16, dtype=np.uint32).reshape(4, 4))
    path = tmp_path / "a.dcm"
    if change == "big_endian":
        ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=False)
    else:
        ds.save_as(path, enforce_file_format=True)
    if change == "short":
        path.write_bytes(path.read_bytes()[:-10])
    assert locate(path) is None


def test_a_bare_data_set_and_other_files_are_left_to_the_decoder(tmp_path):
    bare = tmp_path / "bare.dcm"
    bare.write_bytes((TEST_FILES / "CT_small.dcm").read_bytes()[132:])
    assert locate(bare) is None
    text = tmp_path / "text.txt"
    text.write_bytes(b"hello")
    assert locate(text) is None
    with pytest.raises(OSError):
        locate(tmp_path / "missing.dcm")


def test_a_kept_layout_reads_back_unless_another_version_wrote_it(tmp_path):
    located = locate(_write(tmp_path, make_dataset(np.zeros((4, 6), dtype=np.uint16))))
    kept = located.as_dict()
    assert NativeFrames.from_dict(kept) == located
    assert located.meta["version"] == META_VERSION == FORMAT_VERSION
    assert NativeFrames.from_dict({**kept, "meta": {**kept["meta"], "version": 2}}) is None
    assert NativeFrames.from_dict({**kept, "frame_bytes": 0}) is None
    assert NativeFrames.from_dict({"offset": 1}) is None
    assert NativeFrames.from_dict("damaged") is None
