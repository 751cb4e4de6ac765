"""One source for model specs and labels: engine, bridge, app picker and parsers agree."""

from __future__ import annotations

import subprocess
import sys

from cds_desktop.engine import specs
from cds_desktop.engine.models import describe_spec, resolve_spec


def test_specs_module_imports_without_torch():
    code = (
        "import importlib.util, sys\n"
        f"s = importlib.util.spec_from_file_location('specs', {specs.__file__!r})\n"
        "m = importlib.util.module_from_spec(s); sys.modules['specs'] = m; s.loader.exec_module(m)\n"
        "assert not [n for n in ('torch', 'diffusers', 'PyQt6') if n in sys.modules], sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bridge_and_app_say_the_same_about_each_spec():
    from cds_desktop.app import model_choice

    for spec in ("tiny-random", "shapes-demo", "owner/repo", "./folder", "x.safetensors"):
        assert describe_spec(spec) == model_choice.label(spec) == specs.label(spec)
    assert "RANDOM WEIGHTS" in specs.label("tiny-random")


def test_paths_and_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not specs.looks_like_path("stabilityai/stable-diffusion-xl-base-1.0")
    for spec in ("./sd15", "/abs/model", "~/m", "a/b/c", "model.safetensors", "C:\\models\\x"):
        assert specs.looks_like_path(spec), spec
    assert not specs.looks_like_path("models/sd15")
    (tmp_path / "models").mkdir()
    assert specs.looks_like_path("models/sd15")  # ./models exists: a mistyped path, not an id
    assert resolve_spec("owner/name") == ("hub", None)


def test_one_vae_default_everywhere():
    import argparse

    from cds_desktop.engine.models import load_model
    from cds_desktop.options import add_model_options

    p = argparse.ArgumentParser()
    add_model_options(p)
    assert p.parse_args([]).vae == specs.DEFAULT_VAE_BACKEND == "auto"
    assert load_model.__defaults__[2] == specs.DEFAULT_VAE_BACKEND
