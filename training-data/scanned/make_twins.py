#!/usr/bin/env python3
"""Scanned twins: renders corpus items as degraded A4 scans and reads them with poststelle's own
extractor, so that `poststelle eval --twins` can measure what OCR errors cost.

Steps (see README.md in this folder):
  1. pick 12 items per mailbox, deterministically (ordered by a SHA-256 of the id);
  2. render each item as an A4 letter at 300 dpi, grayscale, DIN 5008 margins, in one of nine
     fonts at 10-12 pt, with scanner degradations (skew, blur, noise, uneven brightness, JPEG);
  3. save the pages as PNG in a temporary folder and run
     `${CARGO_TARGET_DIR:-target}/release/poststelle extract --json FILE...` on them;
  4. write training-data/scanned/twins.jsonl ({"id", "mailbox", "text"} per line).

Everything is a function of the item id: the same corpus gives the same images, byte for byte.

Multi-page items: all pages are rendered, but only page 1 is read, then page 2 and so on only
while the pages read so far have fewer than 60 letters and digits. That is what the product does
with a multi-page scan (it stops after the first page that has enough text), so the twin text is
what poststelle reads from such a letter. Pages are joined with "\\n\\f\\n" as in the product.

Usage (from anywhere; the script works in the repository root):
  python3 training-data/scanned/make_twins.py [--jobs 2] [--keep-images DIR] [--only ID,...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

try:
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit(
        "make_twins.py: Pillow is missing. Install it with\n"
        "  pip install -r training-data/scanned/requirements.txt"
    )

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "training-data" / "corpus"
OUT = ROOT / "training-data" / "scanned" / "twins.jsonl"

PER_MAILBOX = 12
SUBSET_SALT = "poststelle-twins-subset:"
ITEM_SALT = "poststelle-twins-item:"

# A4 at 300 dpi.
DPI = 300
PAGE_W, PAGE_H = 2480, 3508
MM = DPI / 25.4

# DIN 5008: 25 mm left margin, at least 20 mm right; the text begins at the address field
# (45 mm from the top) on page 1; follow-on pages start at 20 mm; 20 mm bottom margin.
LEFT_MM, RIGHT_MM = 25.0, 20.0
TOP1_MM, TOP2_MM, BOTTOM_MM = 45.0, 20.0, 20.0
WRAP_CHARS = 80

# Same rule as the extractor's min_text_chars (config/musterstadt.toml, [extract]).
MIN_TEXT_CHARS = 60

FONT_DIRS = [Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts")]


@dataclass(frozen=True)
class FontSpec:
    name: str
    style: str  # serif, sans or mono
    relpaths: tuple[str, ...]  # below a font dir; first match wins
    package: str  # Debian package that ships it


FONTS = [
    FontSpec("DejaVu Serif", "serif", ("dejavu/DejaVuSerif.ttf",), "fonts-dejavu-core"),
    FontSpec("DejaVu Sans", "sans", ("dejavu/DejaVuSans.ttf",), "fonts-dejavu-core"),
    FontSpec("DejaVu Sans Mono", "mono", ("dejavu/DejaVuSansMono.ttf",), "fonts-dejavu-core"),
    FontSpec(
        "Liberation Serif",
        "serif",
        ("liberation/LiberationSerif-Regular.ttf", "liberation2/LiberationSerif-Regular.ttf"),
        "fonts-liberation",
    ),
    FontSpec(
        "Liberation Sans",
        "sans",
        ("liberation/LiberationSans-Regular.ttf", "liberation2/LiberationSans-Regular.ttf"),
        "fonts-liberation",
    ),
    FontSpec(
        "Liberation Mono",
        "mono",
        ("liberation/LiberationMono-Regular.ttf", "liberation2/LiberationMono-Regular.ttf"),
        "fonts-liberation",
    ),
    FontSpec("FreeSerif", "serif", ("freefont/FreeSerif.ttf",), "fonts-freefont-ttf"),
    FontSpec("FreeSans", "sans", ("freefont/FreeSans.ttf",), "fonts-freefont-ttf"),
    FontSpec("FreeMono", "mono", ("freefont/FreeMono.ttf",), "fonts-freefont-ttf"),
]
SIZES_PT = [10.0, 10.5, 11.0, 11.5, 12.0]


def locate_fonts() -> dict[str, str]:
    """Font name -> file. Exits with the apt packages to install if any font is missing."""
    found: dict[str, str] = {}
    missing: list[FontSpec] = []
    for spec in FONTS:
        path = next(
            (d / rel for d in FONT_DIRS for rel in spec.relpaths if (d / rel).is_file()), None
        )
        if path is None:
            missing.append(spec)
        else:
            found[spec.name] = str(path)
    if missing:
        packages = sorted({s.package for s in missing})
        lines = [
            f"  {s.name} ({s.relpaths[0]}): Debian package {s.package}" for s in missing
        ]
        sys.exit(
            "make_twins.py: font(s) missing:\n"
            + "\n".join(lines)
            + "\nInstall with:\n  apt-get install -y "
            + " ".join(packages)
        )
    return found


def sha_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def load_corpus() -> list[dict]:
    items = []
    for f in sorted(CORPUS.glob("*.jsonl")):
        with f.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        items.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        sys.exit(f"make_twins.py: {f}: line {n}: {e}")
    return items


def pick_subset(items: list[dict], per_mailbox: int) -> list[dict]:
    """The `per_mailbox` items of each mailbox with the smallest SHA-256 of their id."""
    by_box: dict[str, list[dict]] = {}
    for it in items:
        by_box.setdefault(it["mailbox"], []).append(it)
    chosen = []
    for box in sorted(by_box):
        ranked = sorted(by_box[box], key=lambda it: hashlib.sha256(
            (SUBSET_SALT + it["id"]).encode("utf-8")).hexdigest())
        if len(ranked) < per_mailbox:
            print(f"warning: mailbox {box} has only {len(ranked)} items", file=sys.stderr)
        chosen.extend(sorted(ranked[:per_mailbox], key=lambda it: it["id"]))
    return chosen


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Params:
    font: str
    size_pt: float
    line_spacing: float
    paper: int
    ink: int
    shift_x_mm: float
    shift_y_mm: float
    skew_deg: float
    blur: float
    noise_sigma: float
    specks: int
    shade: float
    jpeg_quality: int


def params_for(item_id: str) -> tuple[Params, random.Random]:
    rng = random.Random(sha_int(ITEM_SALT + item_id))
    p = Params(
        font=rng.choice(FONTS).name,
        size_pt=rng.choice(SIZES_PT),
        line_spacing=round(rng.uniform(1.12, 1.3), 3),
        paper=rng.randint(228, 250),
        ink=rng.randint(10, 60),
        shift_x_mm=round(rng.uniform(-2.0, 2.0), 2),
        shift_y_mm=round(rng.uniform(-2.0, 2.0), 2),
        skew_deg=round(rng.uniform(-1.5, 1.5), 2),
        blur=round(rng.uniform(0.3, 1.0), 2),
        noise_sigma=round(rng.uniform(3.0, 14.0), 1),
        specks=rng.randint(0, 200),
        shade=round(rng.uniform(0.06, 0.22), 3),
        jpeg_quality=rng.randint(35, 70),
    )
    return p, rng


def wrap_lines(text: str, font: ImageFont.FreeTypeFont, max_px: float) -> list[str]:
    """The text's own lines, long ones wrapped at WRAP_CHARS (fewer if they would not fit)."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\u00ad", "").split("\n"):
        line = raw.rstrip().expandtabs(4)
        if not line:
            out.append("")
            continue
        width = WRAP_CHARS
        while True:
            if len(line) <= width and font.getlength(line) <= max_px:
                parts = [line]
            else:
                parts = textwrap.wrap(
                    line, width=width, break_on_hyphens=False, drop_whitespace=True
                ) or [line]
            if all(font.getlength(p) <= max_px for p in parts) or width <= 20:
                break
            width -= 4
        out.extend(parts)
    return out


def render_pages(text: str, p: Params, font_path: str) -> list[Image.Image]:
    """Clean grayscale pages (paper and ink colours already applied)."""
    size_px = p.size_pt * DPI / 72.0
    font = ImageFont.truetype(font_path, round(size_px))
    left = (LEFT_MM + p.shift_x_mm) * MM
    max_px = (210.0 - LEFT_MM - RIGHT_MM) * MM
    step = size_px * p.line_spacing
    lines = wrap_lines(text, font, max_px)
    pages: list[Image.Image] = []
    page = draw = None
    y = 0.0
    for line in lines:
        if page is None or y + step > PAGE_H - BOTTOM_MM * MM:
            if page is not None and not line:
                continue  # no blank line at the top of a page
            page = Image.new("L", (PAGE_W, PAGE_H), p.paper)
            draw = ImageDraw.Draw(page)
            pages.append(page)
            top = TOP1_MM if len(pages) == 1 else TOP2_MM
            y = (top + p.shift_y_mm) * MM
        if line:
            draw.text((left, y), line, font=font, fill=p.ink)
        y += step
    if not pages:
        pages.append(Image.new("L", (PAGE_W, PAGE_H), p.paper))
    return pages


def noise_image(rng: random.Random, sigma: float) -> Image.Image:
    """Gaussian-ish sensor noise centred on 128, from the item's own random stream."""
    raw = Image.frombytes("L", (PAGE_W, PAGE_H), rng.randbytes(PAGE_W * PAGE_H))
    nd = statistics.NormalDist(128.0, sigma)
    lut = [max(0, min(255, round(nd.inv_cdf((u + 0.5) / 256.0)))) for u in range(256)]
    return raw.point(lut)


def shading_image(rng: random.Random, shade: float) -> Image.Image:
    """Uneven illumination: a smooth random field from 255 down to 255*(1-shade), plus a darker
    band along one edge (the scanner lid or a book-fold shadow)."""
    gw, gh = 5, 7
    coarse = Image.new("L", (gw, gh))
    coarse.putdata([round(255 * (1 - shade * rng.random())) for _ in range(gw * gh)])
    field = coarse.resize((PAGE_W, PAGE_H), Image.Resampling.BICUBIC)
    edge = Image.new("L", (PAGE_W, 1), 255)
    band = rng.randint(40, 160)
    depth = rng.uniform(0.05, 0.18)
    side = rng.choice(["left", "right"])
    for i in range(band):
        v = round(255 * (1 - depth * (1 - i / band) ** 2))
        x = i if side == "left" else PAGE_W - 1 - i
        edge.putpixel((x, 0), v)
    return ImageChops.multiply(field, edge.resize((PAGE_W, PAGE_H)))


def degrade(page: Image.Image, p: Params, rng: random.Random) -> Image.Image:
    img = page.rotate(
        p.skew_deg, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=p.paper
    )
    img = ImageChops.multiply(img, shading_image(rng, p.shade))
    img = img.filter(ImageFilter.GaussianBlur(p.blur))
    img = ImageChops.add(img, noise_image(rng, p.noise_sigma), scale=1.0, offset=-128)
    if p.specks:
        draw = ImageDraw.Draw(img)
        for _ in range(p.specks):
            x, y = rng.randrange(PAGE_W), rng.randrange(PAGE_H)
            r = rng.choice([1, 1, 1, 2, 2, 3])
            draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(40, 140))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=p.jpeg_quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("L")


def render_item(job: tuple[dict, str, str]) -> tuple[str, list[str], dict]:
    """Renders one item into `workdir`; returns its id, page files and parameters."""
    item, font_path, workdir = job
    p, rng = params_for(item["id"])
    files = []
    for n, page in enumerate(render_pages(item["text"], p, font_path), 1):
        img = degrade(page, p, rng)
        f = os.path.join(workdir, f"{item['id']}_p{n}.png")
        img.save(f, format="PNG", dpi=(DPI, DPI), compress_level=1)
        files.append(f)
    return item["id"], files, p.__dict__


# ---------------------------------------------------------------------------------------------
# OCR with poststelle


def poststelle_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = ROOT / target
    exe = target / "release" / "poststelle"
    if not exe.is_file():
        print(f"{exe} is missing: running `cargo build --release`", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    if not exe.is_file():
        sys.exit(f"make_twins.py: {exe} still missing after cargo build --release")
    return exe


def extract(exe: Path, files: list[str]) -> dict[str, tuple[str, str | None]]:
    """Runs `poststelle extract --json` on a batch; returns file -> (text, error or None)."""
    proc = subprocess.run(
        [str(exe), "extract", "--json", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    got: dict[str, tuple[str, str | None]] = {}
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj.get("error") is None and "text" in obj:
            got[obj["file"]] = (obj["text"], None)
        else:
            got[obj["file"]] = ("", str(obj.get("error")))
    missing = [f for f in files if f not in got]
    if missing:
        sys.exit(
            f"make_twins.py: poststelle extract (exit {proc.returncode}) gave no result for "
            f"{len(missing)} file(s), e.g. {missing[0]}\n{proc.stderr[-2000:]}"
        )
    return got


def extract_all(exe: Path, files: list[str], jobs: int, batch: int) -> dict[str, str]:
    """Extracts in batches, `jobs` calls at a time. A file that failed (e.g. the extractor's
    timeout, which parallel calls make likelier) is tried once more alone, so the result does
    not depend on the machine's load; if it fails again its text is empty, as the product
    then has no text either."""
    batches = [files[k:k + batch] for k in range(0, len(files), batch)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results: dict[str, tuple[str, str | None]] = {}
        for got in pool.map(lambda b: extract(exe, b), batches):
            results.update(got)
    for f in files:
        if results[f][1] is not None:
            print(f"{os.path.basename(f)}: {results[f][1]}; trying again alone", file=sys.stderr)
            results[f] = extract(exe, [f])[f]
            if results[f][1] is not None:
                print(f"warning: {os.path.basename(f)}: {results[f][1]}; empty text",
                      file=sys.stderr)
    return {f: t for f, (t, _) in results.items()}


def alnum(text: str) -> int:
    return sum(1 for c in text if c.isalnum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="twins file (default: %(default)s)")
    ap.add_argument("--per-mailbox", type=int, default=PER_MAILBOX)
    ap.add_argument("--jobs", type=int, default=2, help="parallel renderers and extractors")
    ap.add_argument("--batch", type=int, default=16, help="files per `poststelle extract` call")
    ap.add_argument("--keep-images", type=Path, help="keep the rendered pages in this folder")
    ap.add_argument("--only", help="comma-separated ids (for looking at single items)")
    args = ap.parse_args()

    fonts = locate_fonts()
    items = pick_subset(load_corpus(), args.per_mailbox)
    if args.only:
        wanted = set(args.only.split(","))
        items = [it for it in items if it["id"] in wanted]
        if not items:
            sys.exit("make_twins.py: none of --only is in the subset")
    exe = poststelle_binary()

    tmp = None
    if args.keep_images:
        args.keep_images.mkdir(parents=True, exist_ok=True)
        workdir = str(args.keep_images.resolve())
    else:
        tmp = tempfile.mkdtemp(prefix="poststelle-twins-")
        workdir = tmp
    try:
        print(f"rendering {len(items)} items into {workdir} ...", file=sys.stderr)
        jobs = [(it, fonts[params_for(it["id"])[0].font], workdir) for it in items]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rendered = {i: (files, p) for i, files, p in pool.map(render_item, jobs)}
        multi = sum(1 for files, _ in rendered.values() if len(files) > 1)
        print(f"rendered {sum(len(f) for f, _ in rendered.values())} pages "
              f"({multi} items have more than one page)", file=sys.stderr)

        # Page 1 of every item; later pages only where the product would read them.
        texts: dict[str, list[str]] = {it["id"]: [] for it in items}
        page_no = 0
        while True:
            todo = [
                (i, files[page_no])
                for i, (files, _) in rendered.items()
                if page_no < len(files)
                and len(texts[i]) == page_no
                and (page_no == 0 or alnum("".join(texts[i])) < MIN_TEXT_CHARS)
            ]
            if not todo:
                break
            print(f"OCR of page {page_no + 1}: {len(todo)} files", file=sys.stderr)
            got = extract_all(exe, [f for _, f in todo], args.jobs, args.batch)
            for i, f in todo:
                texts[i].append(got[f])
            page_no += 1

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as fh:
            for it in items:
                text = "\n\f\n".join(texts[it["id"]])
                fh.write(json.dumps(
                    {"id": it["id"], "mailbox": it["mailbox"], "text": text},
                    ensure_ascii=False,
                ) + "\n")
        empty = [i for i, t in texts.items() if not alnum("".join(t))]
        print(f"wrote {len(items)} twins to {args.out}"
              + (f" ({len(empty)} with no text: {', '.join(empty[:5])})" if empty else ""),
              file=sys.stderr)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
