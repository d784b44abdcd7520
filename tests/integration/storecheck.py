"""Reading the store as a user (or fsck) would, and parsing the CLI's output.

Only this module knows the store's paths, so one edit adapts the tests if the engine's layout
differs in spelling (for example "sha256:" in directory names).
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from tests.integration.images import hexof

LEFTOVER = re.compile(r"(?i)(staging|incomplete|partial|\.part$|\.tmp$|\.tmp\.|^tmp[-_.]|^\.tmp)")


def image_dir(root: Path, image_id: str) -> Path:
    return root / "images" / hexof(image_id)


def layer_dir(root: Path, chain_id: str) -> Path:
    return root / "layers" / hexof(chain_id)


def diff_dir(root: Path, chain_id: str) -> Path:
    return layer_dir(root, chain_id) / "diff"


def big_data_name(key: str) -> str:
    """The file name of a big-data item: the key if it only has [.0-9a-z], else "=" + base64."""
    if re.fullmatch(r"[.0-9a-z]+", key):
        return key
    return "=" + base64.b64encode(key.encode()).decode()


def image_record(root: Path, image_id: str) -> dict:
    return json.loads((image_dir(root, image_id) / "images.json").read_text())


def layer_record(root: Path, chain_id: str) -> dict:
    return json.loads((layer_dir(root, chain_id) / "layer.json").read_text())


def image_ids(root: Path) -> set[str]:
    d = root / "images"
    return {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()


def layer_ids(root: Path) -> set[str]:
    d = root / "layers"
    return {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()


def leftovers(root: Path) -> list[str]:
    """Staging or temporary entries left in the store (not descending into layer contents).

    An empty top-level staging/tmp directory is allowed (an engine may keep one).
    """
    out: list[str] = []
    if not root.is_dir():
        return out
    for top in root.iterdir():
        if top.name == "partial" and all(re.fullmatch(r"[0-9a-f]{64}", f.name) and f.is_file()
                                         for f in top.iterdir()):
            continue  # blobs an interrupted pull kept, by digest, for the next to resume
        suspicious = LEFTOVER.search(top.name) or top.name in ("tmp", "staging")
        if suspicious and not (top.is_dir() and not any(top.iterdir())):
            out.append(str(top.relative_to(root)))
    for area in ("images", "layers"):
        d = root / area
        if not d.is_dir():
            continue
        for entry in d.iterdir():
            if LEFTOVER.search(entry.name):
                out.append(str(entry.relative_to(root)))
                continue
            if entry.is_dir():
                for f in entry.iterdir():
                    if LEFTOVER.search(f.name):
                        out.append(str(f.relative_to(root)))
    return out


def inconsistencies(root: Path) -> list[str]:
    """What fsck would report: unparsable images.json, a top layer or one of its parents
    missing, a layer dir without layer.json or diff/ (a half layer)."""
    out: list[str] = []
    for lid in layer_ids(root):
        ld = root / "layers" / lid
        half = not (ld / "layer.json").is_file() or not (ld / "diff").is_dir()
        if half and not LEFTOVER.search(lid):
            out.append(f"layers/{lid}: no layer.json or diff/ (half layer)")
    for iid in image_ids(root):
        if LEFTOVER.search(iid):
            continue
        try:
            rec = image_record(root, iid)
        except (OSError, ValueError) as e:
            out.append(f"images/{iid}/images.json: {e}")
            continue
        top = rec.get("layer")
        seen = 0
        while top:
            seen += 1
            if seen > 1000:
                out.append(f"images/{iid}: layer parent loop")
                break
            try:
                top = layer_record(root, top).get("parent")
            except (OSError, ValueError) as e:
                out.append(f"images/{iid}: layer {top}: {e}")
                break
    return out


# --------------------------------------------------------------------------------------------
# CLI output


def table(stdout: str) -> list[dict[str, str]]:
    """Parse Docker's table output (columns separated by 2+ spaces) into dicts by header."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return []
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = []
    for ln in lines[1:]:
        cells = re.split(r"\s{2,}", ln.strip())
        rows.append(dict(zip(header, cells)))
    return rows


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]


def one_line_error(stderr: str) -> str:
    """Assert stderr is one non-empty line without a traceback; return it."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"want one stderr line, got:\n{stderr}"
    return lines[0]


def field(rec: dict, key: str):
    """rec[key], accepting "diff-id", "diff_id" and "diffID" spellings alike."""
    norm = key.replace("-", "").replace("_", "").lower()
    for k, v in rec.items():
        if k.replace("-", "").replace("_", "").lower() == norm:
            return v
    raise KeyError(f"{key} not in {sorted(rec)}")
