"""`benthic annotate`: predicted CATAMI paths per head, with probabilities and a one-line description, for
every image in a folder (or a BenthicNet CSV + image root), from a trained encoder + HML checkpoint.
Batched, on the GPU when present; bad files are listed with the reason and skipped; an interrupted run
resumes from an append-only partial file (redoing images changed since); the CSV (and optional HTML contact
sheet) is written atomically. Inputs and outputs are checked before any work, and one run at a time holds
an OS lock on an output (released by the kernel if the run is killed), so a second run is refused."""

from __future__ import annotations

import argparse
import base64
import csv
import errno
import hashlib
import html
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benthic.data.reader import READER_VERSION, UnreadableImage, open_rgb, sniff_format, try_read
from benthic.errors import UserError
from benthic.hierarchy.describe import describe
from benthic.io import atomic_path, write_text
from benthic.transfer import core, hml_model

DEFAULT_SIZE = 224
STAMP = ("size", "mtime_ns")  # extra columns of the partial file: the image as it was when its row was written
Predictor = Callable[[np.ndarray], list[dict[str, tuple[tuple[str, ...], list[float]]]]]


# ------------------------------------------------------------------------------------------- inputs
def list_files(folder: str | os.PathLike) -> list[Path]:
    """Every regular, non-hidden file under `folder` (recursively, sorted): non-images are reported, not hidden."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist or is not a folder")
    return sorted(
        p
        for p in root.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(root).parts) and (p.is_file() or p.is_symlink())
    )


def files_from_csv(csv_path: str | os.PathLike, image_root: str | os.PathLike) -> list[Path]:
    """Image paths of a BenthicNet CSV (subset or labelled schema) under `image_root`, one per image; a CSV
    the reader refuses (bad rows, encoding, a path escaping the root) is a UserError with its message."""
    from benthic.data.benthicnet import image_path, read_subset_csv

    try:
        frame = read_subset_csv(csv_path)
        return list(dict.fromkeys(image_path(image_root, row) for _, row in frame.iterrows()))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def display_name(name: str) -> str:
    """A file name as text that is safe in the CSV, the HTML page and as a resume key: bytes that are not
    UTF-8 (kept by Python as surrogate escapes) become \\xNN and control characters \\n, \\t, \\xNN;
    all else is unchanged, so the same file always gets the same name."""
    out = []
    for ch in name:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def load_image_stretched(path: Path, size: int) -> tuple[np.ndarray | None, str]:
    """(uint8 (size, size, 3) array, "") or (None, reason), by the package's one reader (benthic.data.reader).
    The whole photo is stretched (bilinear) to a square, as the reef tiles the heads are trained on are seen."""
    return try_read(path, size, "stretch")


def _stamp(path: Path) -> tuple[str, str]:
    """(size, modification time in ns) of a file as text, ('', '') when it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return "", ""
    return str(info.st_size), str(info.st_mtime_ns)


# ------------------------------------------------------------------------------------------ outputs
def _is_input(path: Path, files: Sequence[Path]) -> bool:
    """Whether existing file `path` is one of `files` (same device and inode: links and symlinks count)."""
    target = os.stat(path)
    for f in files:
        try:
            if os.path.samestat(target, os.stat(f)):
                return True
        except OSError:
            continue
    return False


def check_output(path: Path, option: str, files: Sequence[Path], folder: Path | None) -> None:
    """Refuse, before any work, an output that is a folder, an input image, an existing image, inside the
    image folder, or in a folder that cannot be created or written."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name, e.g. {path / 'annotations.csv'}")
    real = path.resolve()
    if folder is not None and real.is_relative_to(folder.resolve()):
        raise UserError(
            f"{option} {path} is inside the image folder {folder}: the output would join (or overwrite) the "
            f"images; write it outside, e.g. {option} {folder.resolve().parent / path.name}"
        )
    if path.exists():
        if _is_input(path, files):
            raise UserError(f"{option} {path} is one of the input images; it would be overwritten with text")
        if sniff_format(path) is not None:
            raise UserError(f"{option} {path} is an existing image file; refusing to overwrite it with text")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=real.parent):
            pass
    except OSError as exc:
        raise UserError(
            f"{option} {path}: its folder {real.parent} cannot be written ({exc.strerror or exc})"
        ) from None


@contextmanager
def output_lock(out_csv: Path) -> Iterator[Path]:
    """Hold an exclusive OS lock (fcntl.flock) on `.<name>.lock` beside the output while a run writes it:
    another run on the same output is refused at once; the kernel drops the lock when a process dies, so a
    run killed with kill -9 never blocks its resume."""
    import fcntl

    lock = out_csv.with_name(f".{out_csv.name}.lock")
    while True:
        fh = open(lock, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise UserError(
                f"another annotate run (process {holder}) is writing {out_csv}; wait for it to finish, or give "
                f"another --out"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            message = f"{lock}: no file locks on this file system ({exc.strerror}); a second run is not stopped"
            warnings.warn(message, stacklevel=3)
            break
        try:
            current = os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            current = False
        if current:  # not a lock file the previous holder removed after we opened it
            break
        fh.close()
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        fh.close()


# ------------------------------------------------------------------------------------------ the model
def load_predictor(
    checkpoint: str | os.PathLike, device: str | None = None, batch_size: int = 64
) -> tuple[Predictor, list[str], int]:
    """Load and validate a `benthic-hml/1` checkpoint (weights_only=True; UserError naming the file and the bad
    field) and return (predict(images) -> per image {head: (path, per-level probabilities)}, the heads its
    training data labelled, input size). `device` None: benthic.device's choice (a GPU when present)."""
    from benthic.device import pick_device
    from benthic.hierarchy import hml

    device = pick_device(device)
    model, hierarchies, ckpt = hml_model.load_hml_model(checkpoint)
    threshold = float(ckpt["threshold"])
    size = int(getattr(model.encoder, "input_size", None) or DEFAULT_SIZE)
    heads = [h for h in model.head.heads if h in ckpt["trained_heads"]]

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
    key = f"size={size};heads={','.join(heads) if heads else 'all'};reader={READER_VERSION};stamped"
    digest = hashlib.sha256(key.encode())
    with open(checkpoint, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def partial_path(out_csv: Path, checkpoint: Path, size: int, heads: Sequence[str] | None = None) -> Path:
    """The append-only progress file of a run: beside the output, keyed by the checkpoint's content, the
    heads selected (None: all) and the image reader's version."""
    return out_csv.with_name(f".{out_csv.name}.{_fingerprint(checkpoint, size, heads)}.partial")


def read_partial(path: Path, cols: Sequence[str]) -> dict[str, dict[str, str]]:
    """Rows already finished by an interrupted run (file -> row, with the image's size and mtime when its row
    was written); a last line cut off mid-write is ignored."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete))
    if reader.fieldnames is not None and list(reader.fieldnames) != list(cols):
        raise UserError(
            f"{path}: columns {reader.fieldnames} differ from this run's {list(cols)}; delete it (or pass "
            f"--restart) to start over"
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
def input_names(files: Sequence[Path], base: str | os.PathLike | None) -> list[str]:
    """Each file's name in the outputs: relative to `base` when under it, made safe by `display_name`;
    UserError when two inputs would get the same name."""
    names = [
        display_name(str(f.relative_to(base) if base is not None and f.is_relative_to(base) else f)) for f in files
    ]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UserError(f"the same file name {twice!r} is listed twice in the inputs")
    return names


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
    file as they complete, and a rerun with the same checkpoint skips them unless the image's size or
    modification time changed (`resume=False` starts over). `heads` limits the output to some of the
    checkpoint's trained heads (default: all heads its training data labelled; an untrained head's output
    is noise and is never reported). Outputs are checked and locked before the model is loaded."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be an integer >= 1, got {batch_size!r}")
    checkpoint, out_csv = Path(checkpoint), Path(out_csv)
    files = [Path(f) for f in files]
    folder = Path(base) if base is not None else None
    check_output(out_csv, "--out", files, folder)
    if html_path is not None:
        html_path = Path(html_path)
        check_output(html_path, "--html", files, folder)
        if html_path.resolve() == out_csv.resolve():
            raise UserError(f"--html and --out are the same file {out_csv}; give them different names")
    names = input_names(files, base)
    with output_lock(out_csv):
        predict, all_heads, size = predictor or load_predictor(checkpoint, device)
        unknown = [h for h in (heads or []) if h not in all_heads]
        if unknown:
            raise UserError(f"heads {unknown} were not trained in this checkpoint (its trained heads: {all_heads})")
        selected = list(heads) if heads else None
        cols = columns(selected or list(all_heads))
        partial = partial_path(out_csv, checkpoint, size, selected)
        if not resume:
            partial.unlink(missing_ok=True)
        stamps = {n: _stamp(f) for n, f in zip(names, files)}
        done = {
            n: r
            for n, r in read_partial(partial, [*cols, *STAMP]).items()
            if (r["size"], r["mtime_ns"]) == stamps.get(n)
        }
        todo = [(n, f) for n, f in zip(names, files) if n not in done]
        run = (predict, selected or list(all_heads), size)
        _annotate_missing(todo, run, partial, [*cols, *STAMP], stamps, done, batch_size, progress, len(names))
        table = pd.DataFrame([done[n] for n in names], columns=cols).fillna("")
        with atomic_path(out_csv) as tmp:
            table.to_csv(tmp, index=False)
        if html_path is not None:
            write_contact_sheet(table, dict(zip(names, files)), html_path)
        partial.unlink()
    return table


def _annotate_missing(
    todo: Sequence[tuple[str, Path]],
    run: tuple[Predictor, list[str], int],
    partial: Path,
    cols: Sequence[str],
    stamps: Mapping[str, tuple[str, str]],
    done: dict[str, dict],
    batch_size: int,
    progress: bool,
    total: int,
) -> None:
    """Annotate the `todo` images batch by batch, appending each batch's rows (stamped with the image's size
    and mtime) to the partial file and to `done`."""
    predict, heads, size = run
    appender = _Appender(partial, cols)
    try:
        bar = tqdm(total=total, initial=total - len(todo), desc="annotate", unit="img", disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            loaded = [(n, *load_image_stretched(f, size)) for n, f in chunk]
            good = [(n, a) for n, a, _ in loaded if a is not None]
            preds = predict(np.stack([a for _, a in good])) if good else []
            rows = {n: record(n, {h: p[h] for h in heads}) for (n, _), p in zip(good, preds)}
            rows.update({n: {"file": n, "status": "skipped", "reason": why} for n, a, why in loaded if a is None})
            batch_rows = [{**rows[n], **dict(zip(STAMP, stamps[n]))} for n, _ in chunk]
            appender.write(batch_rows)
            done.update({r["file"]: r for r in batch_rows})
            bar.update(len(chunk))
        bar.close()
    finally:
        appender.close()


def _thumbnail(path: Path, size: int = 160) -> str:
    """A JPEG data URL of the image (through the package's reader), or '' when it can no longer be read."""
    try:
        im = open_rgb(path)
    except UnreadableImage:
        return ""
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
        thumb = _thumbnail(paths[r["file"]])
        picture = f'<img src="{thumb}" alt="{html.escape(r["file"])}">' if thumb else "<p>(image changed since)</p>"
        cards.append(
            f"<figure>{picture}"
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
    """Options of `benthic annotate` (values are checked in `run`, so a mistake is one line, exit status 2)."""
    parser.add_argument("source", help="a folder of images, or a BenthicNet CSV (then give --image-root)")
    parser.add_argument("--checkpoint", required=True, help="encoder + HML checkpoint (benthic-hml/1 format)")
    parser.add_argument("--out", default="annotations.csv", help="output CSV (written atomically)")
    parser.add_argument("--image-root", default=None, help="root folder of the images a BenthicNet CSV names")
    parser.add_argument("--html", default=None, help="also write an HTML contact sheet here")
    parser.add_argument("--batch-size", default="32", help="images per batch, >= 1 (default 32)")
    parser.add_argument("--device", default=None, help="auto, cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument(
        "--heads",
        nargs="+",
        action="append",
        default=None,
        help="only these CATAMI heads (default: every head the checkpoint was trained on), e.g. biota substrate",
    )
    parser.add_argument("--restart", action="store_true", help="ignore a partial run and start over")


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"--batch-size must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise UserError(f"--batch-size must be >= 1, got {value}")
    return value


def _heads(given: list[list[str]] | None) -> list[str] | None:
    """The --heads list: given once, none twice (whether the checkpoint trained them is checked on loading it)."""
    if not given:
        return None
    if len(given) > 1:
        flat = " ".join(h for group in given for h in group)
        raise UserError(f"--heads is given {len(given)} times; name every head after one --heads: --heads {flat}")
    heads = given[0]
    for h in heads:
        if heads.count(h) > 1:
            raise UserError(f"--heads names {h!r} twice")
    return heads


def _inputs(source: Path, image_root: str | None) -> tuple[list[Path], Path]:
    """(files, base) of a folder or of a BenthicNet CSV under --image-root; UserError for bad paths."""
    if source.is_dir():
        if image_root:
            raise UserError(f"--image-root is for a CSV source, but {source} is a folder; drop --image-root")
        files, base = list_files(source), source
    elif source.is_file():
        if not image_root:
            raise UserError(f"{source} is a file: pass --image-root with the folder its image paths are under")
        root = Path(image_root)
        if not root.is_dir():
            raise UserError(f"--image-root {root} does not exist or is not a folder")
        files, base = files_from_csv(source, root.resolve()), root.resolve()
    else:
        raise UserError(f"{source} does not exist: give a folder of images or a BenthicNet CSV")
    if not files:
        raise UserError(f"no files to annotate under {source}")
    return files, base


def run(args: argparse.Namespace) -> int:
    """Entry point of `benthic annotate`: checks every option, then prints how many images were annotated and
    skipped."""
    from benthic.device import pick_device

    batch_size, heads = _batch_size(args.batch_size), _heads(args.heads)
    device = pick_device(args.device)
    if not Path(args.checkpoint).is_file():
        raise UserError(f"--checkpoint {args.checkpoint} is not a file (train one, e.g. notebook 05 exports it)")
    files, base = _inputs(Path(args.source), args.image_root)
    table = annotate(
        files,
        args.checkpoint,
        args.out,
        base=base,
        batch_size=batch_size,
        device=device,
        html_path=args.html,
        resume=not args.restart,
        heads=heads,
    )
    skipped = table[table["status"] != "ok"]
    print(
        f"annotated {len(table) - len(skipped)} image(s), skipped {len(skipped)}; wrote {args.out}"
        + (f" and {args.html}" if args.html else "")
    )
    for f, why in zip(skipped["file"], skipped["reason"]):
        print(f"  skipped {f}: {why}")
    return 0
