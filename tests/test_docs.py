"""The documentation, tested.

- Every ```python block of README.md and docs/*.md runs as written: each file's blocks in
  order, in one namespace, in a temporary folder (so a block may use what an earlier block of
  the same file made, and nothing else). A block is left out by an HTML comment on the line
  before it (blank lines allowed in between): ``<!-- docs-test: skip REASON -->`` never runs
  it, ``<!-- docs-test: needs-cuda -->`` runs it only where a CUDA build sees a GPU.
  Snippets that are not Python are fenced ``sh`` or ``text`` and are not run.
- The docstring examples of the installed package run as doctests, and every public
  function and class has an Examples section (numpydoc).
- The site builds with ``mkdocs build --strict`` (warnings are errors).
- The README stays short, its test command is exactly what .ci/run runs, its headline tables
  are the numbers of the result files they name, and its links resolve; every docs page is in
  the site's navigation and every public name in the API reference; every result file the
  docs cite exists; every shipped data file is listed with its licence.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import sparseforge as sf

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CI_SCRIPT = ROOT / ".ci" / "run"
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "python" / "sparseforge" / "data"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_BYTES = 10_000
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(?P<what>[\w-]+)(?P<why>.*?)-->\s*$")


# ---------------------------------------------------------------------------------------------
# Markdown code blocks


@dataclass
class Block:
    path: Path
    line: int          # 1-based line of the first line of code
    lang: str
    code: str
    directive: str | None


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the docs-test directive before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip().split()[0] if line[3:].strip() else ""
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise AssertionError(f"{path.name}:{i + 1}: unclosed code fence")
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            match = DIRECTIVE.match(lines[k].strip()) if k >= 0 else None
            blocks.append(Block(path, i + 2, lang, "\n".join(lines[i + 1:j]) + "\n",
                                match["what"] if match else None))
            i = j + 1
        else:
            i += 1
    return blocks


def _cuda_ready() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(sf.cuda_available() and torch.cuda.is_available())


FILES_WITH_PYTHON = [p for p in MARKDOWN if any(b.lang == "python" for b in code_blocks(p))]


def test_the_convention_is_used_consistently():
    known = {"skip", "needs-cuda"}
    for path in MARKDOWN:
        for block in code_blocks(path):
            assert block.lang in {"python", "sh", "text", "yaml", "toml"}, (
                f"{path.name}:{block.line}: fence a code block as python, sh or text "
                f"(got {block.lang!r})")
            assert block.directive is None or block.directive in known, (
                f"{path.name}:{block.line}: unknown docs-test directive {block.directive!r}")
    assert README in FILES_WITH_PYTHON and len(FILES_WITH_PYTHON) >= 6


@pytest.mark.parametrize("path", FILES_WITH_PYTHON, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run_in_order(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in code_blocks(path):
        if block.lang != "python" or block.directive == "skip":
            continue
        if block.directive == "needs-cuda" and not _cuda_ready():
            continue
        # Pad with blank lines so a traceback points at the Markdown file's own line.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - the docs' own code
        ran += 1
    assert ran, f"no Python block of {path.name} ran"


# ---------------------------------------------------------------------------------------------
# Docstrings: doctests of the installed package, Examples everywhere


def _package_modules() -> list[str]:
    names = ["sparseforge"]
    for info in pkgutil.walk_packages(sf.__path__, "sparseforge."):
        if not info.name.endswith(".__main__"):  # importing it runs the command line
            names.append(info.name)
    return sorted(set(names))


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    params = []
    for name in _package_modules():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # the learned restorers without PyTorch
            params.append(pytest.param(None, id=name, marks=pytest.mark.skip(
                reason=f"{name} cannot be imported here: {exc}")))
            continue
        for test in finder.find(module, name):
            if test.examples:
                params.append(pytest.param(test, id=test.name))
    return params


DOCTESTS = _doctests()


def test_doctests_were_found():
    assert sum(p.values[0] is not None for p in DOCTESTS) >= 6


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_examples(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    report: list[str] = []
    test.globs = dict(test.globs)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)


def _public_objects():
    import sparseforge.restore as restore

    objects = {}
    for module, names in ((sf, sf.__all__), (restore, restore.__all__),
                          (sf.datasets, ["load_image"])):
        for name in names:
            try:
                obj = getattr(module, name)
            except ImportError:  # a learned restorer without PyTorch
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                objects[f"{module.__name__}.{name}"] = obj
    return objects


# Public objects whose docstrings (in modules owned by other work) still lack an Examples
# section; remove a name when its example lands. Kept visible as expected failures.
PENDING_EXAMPLES: set[str] = set()
PUBLIC = _public_objects()


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason="Examples section not written yet",
                                            strict=False)) if n in PENDING_EXAMPLES else n
    for n in sorted(PUBLIC)])
def test_public_objects_have_numpydoc_examples(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert re.search(r"^Examples\n-{8,}\n", doc, re.M) and ">>>" in doc, (
        f"{name} has no numpydoc Examples section with a doctest")


def test_api_reference_lists_every_public_object():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^::: ([\w.]+)$", api, re.M))
    short = {entry.rsplit(".", 1)[-1] for entry in listed}
    missing = sorted(n for n in PUBLIC if n.rsplit(".", 1)[-1] not in short)
    assert not missing, f"docs/api.md does not document {missing}"


def test_compatibility_page_lists_every_deliberate_difference():
    """docs/compatibility.md shows sparseforge._compat's list, entry by entry, word for word."""
    differences = pytest.importorskip("sparseforge._compat").SKLEARN_DIFFERENCES
    page = " ".join((DOCS / "compatibility.md").read_text(encoding="utf-8").split())
    for key, text in differences.items():
        entry = " ".join(f"- **`{key}`**: {text}".split())
        assert entry in page, f"docs/compatibility.md lacks (or words differently) {key!r}"


# ---------------------------------------------------------------------------------------------
# The site


def test_docs_build_strict(tmp_path):
    if not os.environ.get("CI"):
        pytest.importorskip("mkdocs", reason="pip install '.[docs]' to build the docs")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def test_every_page_is_in_the_navigation():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.name for p in DOCS.glob("*.md")}
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", config, re.M))
    assert pages == listed, f"pages not in mkdocs.yml's nav: {sorted(pages - listed)}"


# ---------------------------------------------------------------------------------------------
# The README


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move details to docs/"


def _sh_lines(path: Path) -> list[str]:
    return [line.strip() for b in code_blocks(path) if b.lang == "sh"
            for line in b.code.splitlines() if line.strip()]


def test_readme_test_command_is_what_ci_runs():
    commands = [c for c in _sh_lines(README) if "python -m pytest" in c]
    assert len(commands) == 1, commands
    command = commands[0]
    assert "pip install torch==2.13.0" in command, "the CPU PyTorch must come first"
    ci_lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
    assert command in ci_lines, f"{command!r} is not a line of .ci/run"
    assert any(command in c for c in _sh_lines(DOCS / "install.md"))


def test_readme_demo_command():
    commands = [c for c in _sh_lines(README) if c.endswith("sparseforge demo")]
    assert len(commands) == 1 and "pip install torch==2.13.0" in commands[0]


def test_docs_build_command_is_documented():
    for path in (README, DOCS / "install.md"):
        assert "mkdocs build --strict" in path.read_text(encoding="utf-8"), path.name


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.exists(), f"{path.name}: link to missing {target}"


def _si(value: float) -> str:
    """Three significant figures with k / M, as the README's speed table writes them."""
    for scale, suffix in ((1e6, "M"), (1e3, "k"), (1, "")):
        if value >= scale or scale == 1:
            scaled = value / scale
            digits = max(0, 2 - int(f"{scaled:e}".split("e")[1]))
            return f"{scaled:.{digits}f}{suffix}"
    raise AssertionError(value)


def test_readme_omp_table_is_bench_omp_json():
    text = README.read_text(encoding="utf-8")
    assert "benchmarks/results/bench_omp.json" in text
    data = json.loads((RESULTS / "bench_omp.json").read_text(encoding="utf-8"))
    labels = {"64x256_L8": "64, 256, 8", "64x256_tol": "64, 256, ‖r‖²≤0.01",
              "256x1024_L32": "256, 1024, 32"}
    for case in data["cases"]:
        if case["case"] not in labels:  # the README shows the headline cases only
            continue
        rate = {k: v["signals_per_s"] for k, v in case["methods"].items()}
        row = (f"| {labels[case['case']]} | {case['dtype']} | {_si(rate['sf_compact'])} | "
               f"{_si(rate['sf_dense'])} | {_si(rate['spams'])} | {_si(rate['sklearn'])} | "
               f"{rate['sf_compact'] / rate['spams']:.2f}× | "
               f"{rate['sf_compact'] / rate['sklearn']:.0f}× |")
        assert row in text, f"README's OMP table lacks {row}"
        if (case["case"], case["dtype"]) == ("64x256_L8", "float32"):  # the intro's headline
            headline = (f"**{_si(rate['sf_compact'])} signals/s on 2 cores at (n=64, K=256, 8 "
                        f"atoms, float32): {rate['sf_compact'] / rate['spams']:.1f}x SPAMS and "
                        f"{rate['sf_compact'] / rate['sklearn']:.0f}x scikit-learn**")
            assert headline in " ".join(text.split()), f"README's intro lacks {headline}"


def test_readme_restoration_table_is_bench_restore_json():
    text = README.read_text(encoding="utf-8")
    assert "benchmarks/results/bench_restore.json" in text
    summary = json.loads((RESULTS / "bench_restore.json").read_text(encoding="utf-8"))["summary"]
    table = text.replace("**", "")  # the best cell of a row is bold
    for dataset in ("Set12", "BSD68"):
        # The last column, the shipped refiner of the adaptive K-SVD estimate, from its run.
        gate_file = f"benchmarks/results/bench_restore_ksvdgate_{dataset.lower()}.json"
        assert gate_file in text
        gates = json.loads((ROOT / gate_file).read_text(encoding="utf-8"))["summary"]
        for sigma in (5, 10, 15, 25, 50):
            cells = [summary[f"{dataset}/{sigma}/{m}"] for m in
                     ("ksvd", "bm3d", "plain-blind-balanced", "hybrid-blind")]
            for method in ("noisy", "ksvd", "bm3d"):
                key = f"{dataset}/{sigma}/{method}"  # the same noise and scoring
                assert abs(gates[key]["psnr"] - summary[key]["psnr"]) < 1e-9, key
            cells.append(gates[f"{dataset}/{sigma}/hybrid-ksvdgate-blind"])
            row = f"| {dataset} | {sigma} | " + " | ".join(
                f"{c['psnr']:.2f} / {c['ssim']:.3f}" for c in cells) + " |"
            assert row in table, f"README's restoration table lacks {row}"


def test_cited_result_files_exist():
    """Every benchmark result the docs name is in benchmarks/results/ (canonical) or its
    archive/, where the docs must say so."""
    problems = []
    for path in [*MARKDOWN, ROOT / "benchmarks" / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"((?:archive/)?)(bench_[\w.-]+?\.(?:json|png))\b", text):
            archived, name = match.groups()
            if "_quick" in name or name == "bench_omp_quick.json":
                continue
            where = RESULTS / "archive" if archived else RESULTS
            if not (where / name).is_file():
                problems.append(f"{path.relative_to(ROOT)}: {archived}{name}")
    assert not problems, f"cited but not in benchmarks/results/: {problems}"


def test_archive_index_lists_every_archived_file():
    index = (RESULTS / "archive" / "README.md").read_text(encoding="utf-8")
    for file in (RESULTS / "archive").iterdir():
        if file.name != "README.md":
            assert f"`{file.name}`" in index, f"archive/README.md does not describe {file.name}"


def test_data_readme_lists_every_shipped_file_with_a_licence():
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for file in DATA.iterdir():
        if file.name != "README.md" and not file.name.startswith("."):
            rows = [line for line in text.splitlines() if f"`{file.name}`" in line
                    and line.startswith("|")]
            assert rows, f"data/README.md does not list {file.name}"


def test_citation_cff():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), key
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert str(cff.get("version")) == version[1]
