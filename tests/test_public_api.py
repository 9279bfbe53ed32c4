"""The seam between the packages: dat uses noisemix's public API (and noisemix.schema,
noisemix.testing) only, and noisemix imports without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import noisemix

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"noisemix", "noisemix.schema", "noisemix.testing"}


def _noisemix_imports(path: Path):
    """(line, module, names) of every import of noisemix in a file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "noisemix":
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "noisemix":
                    yield node.lineno, alias.name, []


def test_dat_imports_only_noisemix_public_api():
    wrong = []
    for path in sorted((ROOT / "dat").rglob("*.py")):
        for line, module, names in _noisemix_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module not in PUBLIC_MODULES:
                wrong.append(f"{where}: imports {module}")
            elif module == "noisemix":
                wrong += [f"{where}: noisemix.{name} is not in noisemix.__all__" for name in names
                          if name not in noisemix.__all__ and name not in ("schema", "testing")]
    assert not wrong, "\n".join(wrong)


def test_the_boundary_check_catches_a_private_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from noisemix.rng import stable_key\nimport noisemix.cache\nfrom noisemix import schema as S\n")
    assert [m for _, m, _ in _noisemix_imports(module)] == ["noisemix.rng", "noisemix.cache", "noisemix"]


def test_public_names_exist_and_are_documented():
    for name in noisemix.__all__:
        value = getattr(noisemix, name)
        assert name == "__version__" or value.__doc__, f"noisemix.{name} has no docstring"


def test_noisemix_and_its_cli_import_with_torch_blocked():
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
            "import noisemix, noisemix.cli, noisemix.build, noisemix.render, noisemix.verify, noisemix.export, "
            "noisemix.testing\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Use noisemix from your own code"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]


def test_the_readme_snippet_runs_as_written(tmp_path):
    result = subprocess.run([sys.executable, "-c", _readme_snippet()], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    count, *_ = result.stdout.split()
    assert int(count) > 0 and "(8748,)" in result.stdout


def test_mixture_dataset_items_are_the_mixer_s_audio_and_wrap_in_a_torch_loader(tmp_path):
    import numpy as np
    import torch

    from noisemix import Mixer, MixtureDataset, load_manifest
    from noisemix import schema as S
    from noisemix.testing import write_synthetic_manifest

    manifest = load_manifest(write_synthetic_manifest(tmp_path / "m", tmp_path / "audio"))
    dataset = MixtureDataset(manifest, "valid", stems=True)
    rows = manifest.split_rows("valid")
    assert len(dataset) == len(rows)
    for i in (0, 1, len(dataset) - 1):
        item, row = dataset[i], rows.iloc[i]
        assert item["mixture_id"] == row[S.MIXTURE_ID] and np.array_equal(item["audio"], Mixer(manifest).mix(row))
        assert item["noise"] is None if row[S.NOISE_SOURCE_ID] == "" else np.allclose(item["clean"] + item["noise"],
                                                                                      item["audio"], atol=1e-6)
    plain = MixtureDataset(manifest, "valid")
    batch = next(iter(torch.utils.data.DataLoader(plain, batch_size=len(plain))))  # rows with different tags
    assert batch["audio"].shape == (len(plain), 8748) and batch["audio"].dtype == torch.float32
    assert len(set(batch["tags"])) > 2 and batch["labels"].shape == (len(plain), len(plain.vocabulary))
    for tags, labels in zip(batch["tags"], batch["labels"]):
        assert {plain.vocabulary[i] for i in torch.nonzero(labels).flatten().tolist()} == set(filter(None, tags.split(";")))


def test_dat_without_torch_says_which_extra_in_one_line():
    code = "import sys; sys.modules['torch'] = None; sys.argv = ['dat', 'train', '--help']\nfrom dat.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "pip install 'noisemix-dat[train]'" in result.stderr


def test_split_rows_selects_a_split_and_the_old_name_warns(tmp_path):
    from noisemix import load_manifest
    from noisemix import schema as S
    from noisemix.testing import write_synthetic_manifest

    manifest = load_manifest(write_synthetic_manifest(tmp_path / "m", tmp_path / "audio",
                                                      clips={"train": 4, "valid": 2, "test": 2}))
    rows = manifest.split_rows("test")
    assert len(rows) and set(rows[S.SPLIT]) == {"test"}
    with pytest.warns(DeprecationWarning, match="split_rows"):
        assert manifest.split("test").equals(rows)
