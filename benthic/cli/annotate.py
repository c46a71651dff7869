"""`benthic annotate`: predicted CATAMI paths per head, with probabilities and a one-line description, for
every image in a folder (or a BenthicNet CSV + image root), from a trained encoder + HML checkpoint.
Batched, on the GPU when present; bad files are listed with the reason and skipped; an interrupted run
resumes from an append-only partial file; the CSV (and optional HTML contact sheet) is written atomically."""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benthic.data.reader import try_read
from benthic.hierarchy.describe import describe
from benthic.io import atomic_path, write_text
from benthic.transfer import core, hml_model

DEFAULT_SIZE = 224
Predictor = Callable[[np.ndarray], list[dict[str, tuple[tuple[str, ...], list[float]]]]]


# ------------------------------------------------------------------------------------------- inputs
def list_files(folder: str | os.PathLike) -> list[Path]:
    """Every regular, non-hidden file under `folder` (recursively, sorted): non-images are reported, not hidden."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    return sorted(
        p
        for p in root.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(root).parts) and (p.is_file() or p.is_symlink())
    )


def files_from_csv(csv_path: str | os.PathLike, image_root: str | os.PathLike) -> list[Path]:
    """Image paths of a BenthicNet CSV (subset or labelled schema) under `image_root`, one per image."""
    from benthic.data.benthicnet import image_path, read_subset_csv

    frame = read_subset_csv(csv_path)
    return list(dict.fromkeys(image_path(image_root, row) for _, row in frame.iterrows()))


def load_image_stretched(path: Path, size: int) -> tuple[np.ndarray | None, str]:
    """(uint8 (size, size, 3) array, "") or (None, reason), by the package's one reader (benthic.data.reader).
    The whole photo is stretched (bilinear) to a square, as the reef tiles the heads are trained on are seen."""
    return try_read(path, size, "stretch")


# ------------------------------------------------------------------------------------------ the model
def load_predictor(
    checkpoint: str | os.PathLike, device: str | None = None, batch_size: int = 64
) -> tuple[Predictor, list[str], int]:
    """Load a `benthic-hml/1` checkpoint (weights_only=True) and return (predict(images) -> per image
    {head: (path, per-level probabilities)}, the heads its training data labelled, input size)."""
    from benthic.hierarchy import hml

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"checkpoint {checkpoint} not found: train one with benthic.transfer.hml_model.save_hml_model"
        )
    model, hierarchies, ckpt = hml_model.load_hml_model(checkpoint)
    threshold = float(ckpt.get("threshold", hml.THRESHOLD))
    size = int(getattr(model.encoder, "input_size", None) or DEFAULT_SIZE)
    heads = [h for h in model.head.heads if h in ckpt.get("trained_heads", model.head.heads)]

    def predict(images: np.ndarray) -> list[dict[str, tuple[tuple[str, ...], list[float]]]]:
        logits = core.predict(model, images, size, batch_size=batch_size, device=device)
        import torch

        probs = model.head.split(model.head.probabilities(torch.from_numpy(logits).to(model.head.R.device)))
        out: list[dict] = [{} for _ in range(len(images))]
        for h in heads:
            p = probs[h].cpu().numpy()
            for i, idx in enumerate(hml.decode_indices(p, hierarchies[h].parent, threshold)):
                node = tuple(hierarchies[h].nodes[idx[-1]]) if idx else ()
                out[i][h] = (node, [float(p[i, j]) for j in idx])
        return out

    return predict, heads, size


# ------------------------------------------------------------------------------------------ records
def columns(heads: Sequence[str]) -> list[str]:
    """CSV columns: file, status (ok/skipped), reason, per head its path, deepest probability and per-level
    probabilities, and the description."""
    cols = ["file", "status", "reason"]
    for h in heads:
        cols += [f"{h}_path", f"{h}_prob", f"{h}_level_probs"]
    return cols + ["description"]


def record(name: str, pred: Mapping[str, tuple[tuple[str, ...], list[float]]]) -> dict[str, str]:
    """One CSV row for an annotated image."""
    row = {"file": name, "status": "ok", "reason": ""}
    for h, (path, level) in pred.items():
        row[f"{h}_path"] = " > ".join(path)
        row[f"{h}_prob"] = f"{level[-1]:.4f}" if level else ""
        row[f"{h}_level_probs"] = " > ".join(f"{q:.4f}" for q in level)
    row["description"] = describe({h: (path, level[-1] if level else 0.0) for h, (path, level) in pred.items()})
    return row


def _fingerprint(checkpoint: Path, size: int, heads: Sequence[str] | None) -> str:
    digest = hashlib.sha256(f"size={size};heads={','.join(heads) if heads else 'all'}".encode())
    with open(checkpoint, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def partial_path(out_csv: Path, checkpoint: Path, size: int, heads: Sequence[str] | None = None) -> Path:
    """The append-only progress file of a run: beside the output, keyed by the checkpoint's content and the
    heads selected (None: all)."""
    return out_csv.with_name(f".{out_csv.name}.{_fingerprint(checkpoint, size, heads)}.partial")


def read_partial(path: Path, cols: Sequence[str]) -> dict[str, dict[str, str]]:
    """Rows already finished by an interrupted run (file -> row); a last line cut off mid-write is ignored."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete))
    if reader.fieldnames is not None and list(reader.fieldnames) != list(cols):
        raise ValueError(
            f"{path}: columns {reader.fieldnames} differ from this run's {list(cols)}; delete it to restart"
        )
    return {row["file"]: row for row in reader}


class _Appender:
    """Append complete CSV rows to the partial file, flushed and fsynced per batch, so a crash loses at most
    the batch in flight."""

    def __init__(self, path: Path, cols: Sequence[str]):
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, "rb+") as fh:  # drop a last line cut off mid-write
                data = fh.read()
                fh.truncate(data.rfind(b"\n") + 1)
        self.fh = open(path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=list(cols), restval="")
        if new:
            self.writer.writeheader()

    def write(self, rows: Iterable[dict]) -> None:
        self.writer.writerows(rows)
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# ------------------------------------------------------------------------------------------- the run
def annotate(
    files: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    out_csv: str | os.PathLike,
    base: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: str | None = None,
    html_path: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    predictor: tuple[Predictor, list[str], int] | None = None,
    heads: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Annotate `files` with the checkpoint's model and write `out_csv` atomically (rows in input order,
    names relative to `base`); bad files get status 'skipped' and a reason. Finished rows go to a partial
    file as they complete, and a rerun with the same checkpoint skips them (`resume=False` starts over).
    `heads` limits the output to some of the checkpoint's trained heads (default: all heads its training
    data labelled; an untrained head's output is noise and is never reported)."""
    checkpoint, out_csv = Path(checkpoint), Path(out_csv)
    predict, all_heads, size = predictor or load_predictor(checkpoint, device)
    unknown = [h for h in (heads or []) if h not in all_heads]
    if unknown:
        raise ValueError(f"heads {unknown} were not trained in this checkpoint (its trained heads: {all_heads})")
    selected = list(heads) if heads else None
    heads = selected or list(all_heads)
    cols = columns(heads)
    files = [Path(f) for f in files]
    names = [str(f.relative_to(base)) if base is not None and Path(f).is_relative_to(base) else str(f) for f in files]
    if len(set(names)) != len(names):
        raise ValueError("the same file is listed twice in the inputs")
    partial = partial_path(out_csv, checkpoint, size, selected)
    if not resume and partial.exists():
        partial.unlink()
    done = read_partial(partial, cols)
    todo = [(n, f) for n, f in zip(names, files) if n not in done]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    appender = _Appender(partial, cols)
    try:
        bar = tqdm(total=len(names), initial=len(names) - len(todo), desc="annotate", unit="img", disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            loaded = [(n, *load_image_stretched(f, size)) for n, f in chunk]
            good = [(n, a) for n, a, _ in loaded if a is not None]
            preds = predict(np.stack([a for _, a in good])) if good else []
            rows = {n: record(n, {h: p[h] for h in heads}) for (n, _), p in zip(good, preds)}
            rows.update({n: {"file": n, "status": "skipped", "reason": why} for n, a, why in loaded if a is None})
            batch_rows = [rows[n] for n, _ in chunk]
            appender.write(batch_rows)
            done.update({r["file"]: r for r in batch_rows})
            bar.update(len(chunk))
        bar.close()
    finally:
        appender.close()
    table = pd.DataFrame([done[n] for n in names], columns=cols).fillna("")
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    if html_path is not None:
        write_contact_sheet(table, dict(zip(names, files)), html_path)
    partial.unlink()
    return table


def _thumbnail(path: Path, size: int = 160) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_contact_sheet(table: pd.DataFrame, paths: Mapping[str, Path], html_path: str | os.PathLike) -> Path:
    """A self-contained HTML page: a thumbnail per annotated image with its description and paths, then
    the skipped files with their reasons (written atomically)."""
    ok = table[table["status"] == "ok"]
    cards = []
    for row in ok.itertuples(index=False):
        r = row._asdict()
        heads = [c[:-5] for c in table.columns if c.endswith("_path")]
        detail = "<br>".join(
            f"<b>{html.escape(h)}</b>: {html.escape(r[f'{h}_path'] or '-')} {html.escape(str(r[f'{h}_prob']))}"
            for h in heads
        )
        cards.append(
            f'<figure><img src="{_thumbnail(paths[r["file"]])}" alt="{html.escape(r["file"])}">'
            f"<figcaption><code>{html.escape(r['file'])}</code><br>{html.escape(r['description'])}"
            f"<br><small>{detail}</small></figcaption></figure>"
        )
    skipped = table[table["status"] != "ok"]
    bad = "".join(
        f"<li><code>{html.escape(f)}</code>: {html.escape(why)}</li>"
        for f, why in zip(skipped["file"], skipped["reason"])
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>benthic annotations</title><style>"
        "body{font-family:sans-serif}figure{display:inline-block;width:220px;vertical-align:top;margin:6px}"
        "img{max-width:200px}figcaption{font-size:12px}</style></head><body>"
        f"<h1>Annotations: {len(ok)} image(s), {len(skipped)} skipped</h1>{''.join(cards)}"
        + (f"<h2>Skipped files</h2><ul>{bad}</ul>" if len(skipped) else "")
        + "</body></html>\n"
    )
    return write_text(html_path, page)


# ------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `benthic annotate`."""
    parser.add_argument("source", help="a folder of images, or a BenthicNet CSV (then give --image-root)")
    parser.add_argument("--checkpoint", required=True, help="encoder + HML checkpoint (benthic-hml/1 format)")
    parser.add_argument("--out", default="annotations.csv", help="output CSV (written atomically)")
    parser.add_argument("--image-root", default=None, help="root folder of the images a BenthicNet CSV names")
    parser.add_argument("--html", default=None, help="also write an HTML contact sheet here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument(
        "--heads",
        nargs="+",
        default=None,
        help="only these CATAMI heads (default: every head the checkpoint was trained on), e.g. biota substrate",
    )
    parser.add_argument("--restart", action="store_true", help="ignore a partial run and start over")


def run(args: argparse.Namespace) -> int:
    """Entry point of `benthic annotate`: prints how many images were annotated and skipped."""
    source = Path(args.source)
    if source.is_dir():
        files, base = list_files(source), source
    elif source.is_file():
        if not args.image_root:
            raise SystemExit(f"{source} is a file: pass --image-root with the folder its image paths are under")
        files, base = files_from_csv(source, args.image_root), Path(args.image_root).resolve()
    else:
        raise SystemExit(f"{source} does not exist: give a folder of images or a BenthicNet CSV")
    if not files:
        raise SystemExit(f"no files to annotate under {source}")
    table = annotate(
        files,
        args.checkpoint,
        args.out,
        base=base,
        batch_size=args.batch_size,
        device=args.device,
        html_path=args.html,
        resume=not args.restart,
        heads=args.heads,
    )
    skipped = table[table["status"] != "ok"]
    print(
        f"annotated {len(table) - len(skipped)} image(s), skipped {len(skipped)}; wrote {args.out}"
        + (f" and {args.html}" if args.html else "")
    )
    for f, why in zip(skipped["file"], skipped["reason"]):
        print(f"  skipped {f}: {why}")
    return 0
