"""The initial managed pathology list: the chest labels of the shipped and supported models, the
spine findings, and the codes a report needs besides pathologies (normal, other)."""

from django.db import migrations

CHEST = ["chest_xray"]
SPINE = ["spine_xray"]

CODES = [
    ("normal", "No pathology", "Без патологии", []),
    ("pneumonia", "Pneumonia", "Пневмония", CHEST),
    ("atelectasis", "Atelectasis", "Ателектаз", CHEST),
    ("consolidation", "Consolidation", "Консолидация", CHEST),
    ("infiltration", "Infiltration", "Инфильтрация", CHEST),
    ("pneumothorax", "Pneumothorax", "Пневмоторакс", CHEST),
    ("edema", "Pulmonary oedema", "Отёк лёгких", CHEST),
    ("emphysema", "Emphysema", "Эмфизема", CHEST),
    ("fibrosis", "Fibrosis", "Фиброз", CHEST),
    ("effusion", "Pleural effusion", "Плевральный выпот", CHEST),
    ("pleural-thickening", "Pleural thickening", "Утолщение плевры", CHEST),
    ("cardiomegaly", "Cardiomegaly", "Кардиомегалия", CHEST),
    ("nodule", "Nodule", "Узел", CHEST),
    ("mass", "Mass", "Объёмное образование", CHEST),
    ("hernia", "Hernia", "Грыжа", CHEST),
    ("lung-lesion", "Lung lesion", "Очаговое поражение лёгкого", CHEST),
    ("fracture", "Fracture", "Перелом", []),
    ("lung-opacity", "Lung opacity", "Затемнение лёгочного поля", CHEST),
    (
        "enlarged-cardiomediastinum",
        "Enlarged cardiomediastinum",
        "Расширение кардиомедиастинальной тени",
        CHEST,
    ),
    ("scoliosis", "Scoliosis", "Сколиоз", SPINE),
    ("spondylolisthesis", "Spondylolisthesis", "Спондилолистез", SPINE),
    ("other", "Other finding", "Другая находка", []),
]


def seed(apps, schema_editor):
    FindingCode = apps.get_model("studies", "FindingCode")
    for order, (code, name_en, name_ru, categories) in enumerate(CODES):
        FindingCode.objects.update_or_create(
            code=code,
            defaults={
                "name_en": name_en,
                "name_ru": name_ru,
                "categories": categories,
                "sort_order": order * 10,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("studies", "0003_reading_and_finding_codes")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
