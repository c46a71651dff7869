"""Execute every numbered notebook at the smoke scale with papermill, so CI catches a broken notebook."""

import pytest

from benthic.cli import notebooks
from benthic.paths import output_dir

BOOKS = notebooks.numbered_notebooks()


def _kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return notebooks.KERNEL_NAME if notebooks.KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


@pytest.mark.notebook
@pytest.mark.parametrize("book", BOOKS, ids=[b.stem for b in BOOKS])
def test_notebook_runs_at_smoke_scale(book, tmp_path):
    before = {p: p.stat().st_mtime for p in output_dir("smoke").rglob("*")}
    notebooks.execute(book, tmp_path, {"scale": "smoke"}, kernel=_kernel(), progress=False)
    written = [p for p in output_dir("smoke").rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime]
    assert written, f"{book.name} wrote no figure or table into {output_dir('smoke')}"
