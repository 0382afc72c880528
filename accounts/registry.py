"""Hooks that let each app contribute to cross-app commands without arrows pointing back.

Apps register in their ``AppConfig.ready``: demo loaders (``load_demo``) and bench seeders
(``seed_bench``). Both commands live in accounts and call whatever is registered.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoLoader:
    order: int
    name: str
    load: Callable[..., str]


@dataclass(frozen=True)
class BenchSeeder:
    option: str  # the seed_bench option it serves, e.g. "patients"
    order: int
    seed: Callable[..., str]


demo_loaders: dict[str, DemoLoader] = {}
bench_seeders: dict[str, BenchSeeder] = {}


def register_demo_loader(name: str, load: Callable[..., str], *, order: int) -> None:
    demo_loaders[name] = DemoLoader(order=order, name=name, load=load)


def register_bench_seeder(option: str, seed: Callable[..., str], *, order: int) -> None:
    bench_seeders[option] = BenchSeeder(option=option, order=order, seed=seed)
