"""The one registry (scpdiff.registry) behind priors, datasets and segmenters, and the benchmark
files' ``extends`` (smoke.yaml is the toy benchmark plus overrides)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from scpdiff.config.benchmark import load_benchmark, validate_benchmark
from scpdiff.config.workflow import resolve_benchmark
from scpdiff.errors import ConfigError
from scpdiff.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"


def _fn_in(module: str, qualname: str = "load"):
    """A function that says it is defined as ``module.qualname``."""

    def f():
        return qualname

    f.__module__, f.__qualname__ = module, qualname
    return f


# ---------------------------------------------------------------- Registry
def test_a_duplicate_name_is_rejected_naming_both_origins():
    reg = Registry("segmenter")
    reg.add("net", _fn_in("plugin_a", "load_net"))
    with pytest.raises(ConfigError, match=r"a segmenter named 'net' is already registered \(plugin_a\.load_net\); plugin_b\.load_other"):
        reg.register("net")(_fn_in("plugin_b", "load_other"))


def test_the_same_object_again_is_accepted():
    reg = Registry("segmenter")
    first = _fn_in("plugin_a", "load_net")
    reg.add("net", first)
    reg.add("net", first)
    # a module imported twice defines a new object with the same module and qualname
    again = _fn_in("plugin_a", "load_net")
    assert reg.add("net", again) is again and reg.get("net") is again


@pytest.fixture
def builtin_module(tmp_path, monkeypatch):
    """A registry whose built-in ``lazy`` is a module on disk that registers itself when imported."""
    reg = Registry("prior variant", {"lazy": "scpdiff_test_lazy_builtin", "other": "never_imported_module"})
    holder = types.ModuleType("scpdiff_test_holder")
    holder.REG = reg
    monkeypatch.setitem(sys.modules, "scpdiff_test_holder", holder)
    (tmp_path / "scpdiff_test_lazy_builtin.py").write_text(
        "from scpdiff_test_holder import REG\n\n\n@REG.register('lazy')\nclass Builtin:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield reg
    sys.modules.pop("scpdiff_test_lazy_builtin", None)


def test_builtins_are_imported_on_first_lookup(builtin_module):
    reg = builtin_module
    assert reg.names() == ["lazy", "other"]  # listing imports nothing
    assert "scpdiff_test_lazy_builtin" not in sys.modules
    cls = reg.get("lazy")
    assert cls.__module__ == "scpdiff_test_lazy_builtin" and "scpdiff_test_lazy_builtin" in sys.modules
    assert reg.get("lazy") is cls


def test_a_builtin_name_is_taken_by_its_module_before_it_is_imported(builtin_module):
    # the plugin comes first, yet the built-in is imported and the clash named, not shadowed
    with pytest.raises(ConfigError, match=r"already registered \(scpdiff_test_lazy_builtin\.Builtin\); my_plugin\.Shadow"):
        builtin_module.add("lazy", _fn_in("my_plugin", "Shadow"))
    assert builtin_module.get("lazy").__qualname__ == "Builtin"


def test_an_unknown_name_lists_the_known_ones():
    reg = Registry("segmenter", {"toy": "scpdiff.segmenters.toy"})
    reg.add("extra", _fn_in("plugin", "load"))
    with pytest.raises(ConfigError, match=r"unknown segmenter 'nope'; known: \['extra', 'toy'\]"):
        reg.get("nope")


def test_the_three_registries_reject_a_duplicate_of_a_builtin():
    from scpdiff.datasets import open_dataset, register_dataset
    from scpdiff.priors import get_prior_class, register
    from scpdiff.segmenters import load_segmenter, register_segmenter

    with pytest.raises(ConfigError, match=r"a dataset kind named 'toy' is already registered \(scpdiff\.datasets\.toy\."):
        register_dataset("toy")(type("Impostor", (), {}))
    with pytest.raises(ConfigError, match=r"already registered \(scpdiff\.segmenters\.toy\."):
        register_segmenter("toy")(_fn_in("elsewhere", "load_toy"))
    with pytest.raises(ConfigError, match=r"already registered \(scpdiff\.priors\.joint\.JointPrior\)"):
        register("joint")(type("JointPrior2", (get_prior_class("normal"),), {}))
    # and the built-ins are untouched
    assert get_prior_class("joint").__module__ == "scpdiff.priors.joint"
    with pytest.raises(ConfigError, match="unknown dataset kind 'imagenet'; known: .*'toy'"):
        open_dataset("imagenet")
    with pytest.raises(ConfigError, match="unknown segmenter 'nope'; known: .*'drn_d_105'"):
        load_segmenter("nope")


# ---------------------------------------------------------------- extends
def test_smoke_is_exactly_the_former_copy_of_toy():
    """smoke.yaml is now ``extends: toy`` plus what differs; resolved it is today's benchmark to the
    key (tests/fixtures/smoke_before_extends.yaml is the file as it was before, a full copy, plus what
    the toy has changed since that the smoke inherits: the 2x VAE and the UNet on windows)."""
    before = dict(validate_benchmark(yaml.safe_load((FIXTURES / "smoke_before_extends.yaml").read_text())))
    for bench in (load_benchmark("smoke"), resolve_benchmark("smoke")):
        assert dict(bench) == before
        # same key order too, so the resolved benchmark.yaml the jobs read is the same text
        assert yaml.safe_dump(dict(bench), sort_keys=False) == yaml.safe_dump(before, sort_keys=False)
        assert bench.path.name == "smoke.yaml"


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_extends_chains_merge_and_null_drops_a_key(tmp_path):
    _write(tmp_path / "mid.yaml", {"extends": "toy", "name": "mid", "counts": {"reference": 40}})
    leaf = _write(tmp_path / "leaf.yaml", {"extends": "mid.yaml", "name": "leaf", "mu": {"oracle_grid": None},
                                           "protocol": {"ddim_steps": 5}})
    bench = load_benchmark(leaf)
    toy = load_benchmark("toy")
    assert bench.name == "leaf" and "extends" not in bench
    assert bench["counts"] == {**toy["counts"], "reference": 40}
    assert bench["protocol"] == {**toy["protocol"], "ddim_steps": 5}
    assert bench.protocol.sources["ddim_steps"] == f"benchmark file {leaf}"
    assert bench.protocol.sources["guidance_scale"] == f"benchmark file {toy.path}"
    assert "oracle_grid" not in bench["mu"] and bench["mu"]["grid"] == toy["mu"]["grid"]
    # the workflow's overrides go on top of the resolved chain
    over = resolve_benchmark(str(leaf), {"leaf": {"counts": {"shard_size": 7}}})
    assert over["counts"] == {**bench["counts"], "shard_size": 7}


def test_an_extends_cycle_is_rejected_naming_the_files(tmp_path):
    a = _write(tmp_path / "a.yaml", {"extends": "b.yaml", "name": "a"})
    _write(tmp_path / "b.yaml", {"extends": "a", "name": "b"})
    with pytest.raises(ConfigError, match=r"b\.yaml: extends: extends form a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_benchmark(a)
    with pytest.raises(ConfigError, match="cycle"):
        resolve_benchmark(str(a))


def test_a_bad_extends_names_the_file(tmp_path):
    missing = _write(tmp_path / "m.yaml", {"extends": "no_such_base", "name": "m"})
    with pytest.raises(ConfigError, match=r"m\.yaml: extends: no benchmark named 'no_such_base'"):
        load_benchmark(missing)
    odd = _write(tmp_path / "o.yaml", {"extends": ["toy"], "name": "o"})
    with pytest.raises(ConfigError, match=r"o\.yaml: extends: expected a benchmark name"):
        load_benchmark(odd)
    # what is wrong after merging is reported against the extending file
    bad = _write(tmp_path / "bad.yaml", {"extends": "toy", "name": "bad", "mu": {"table": 1.5}})
    with pytest.raises(ConfigError, match=r"bad\.yaml \(extends .*toy\.yaml\): invalid benchmark config:\n  mu/table"):
        load_benchmark(bad)


def test_a_benchmark_file_must_be_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: a benchmark file must be a YAML mapping"):
        load_benchmark(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_benchmark(tmp_path / "broken.yaml")
