"""``stemscribe models``: the separation models, where their weights are looked for, usable offline or not."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "models",
        help="list separation models and whether each is usable offline",
        description="List the separation models: stems, where their weights are looked for (first match "
        "wins), whether they are usable offline right now, size on disk and licence. Nothing is downloaded.",
    )
    p.add_argument("--model-dir", default=None, metavar="DIR",
                   help="also look in this folder first (as `split --model-dir`); also: STEMSCRIBE_MODEL_DIR")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    return p


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _home(path) -> str:
    from pathlib import Path

    text, home = str(path), str(Path.home())
    return "~" + text[len(home):] if home != "/" and text.startswith(home + "/") else text


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _stems(info) -> str:
    extra = [s for s in info.native_stems if s not in info.stems]
    text = ",".join(info.stems)
    return text + (f" (+{'+'.join(extra)} in other)" if extra else "")


def run(args: argparse.Namespace) -> int:
    from ..models import list_models, search_dirs

    infos = list_models(model_dir=args.model_dir)
    if args.json:
        import json

        rows = [{
            "name": i.name, "description": i.description, "stems": list(i.stems), "native_stems": list(i.native_stems),
            "sr": i.sr, "licence": i.licence, "files": list(i.files), "sha256": i.sha256, "urls": list(i.urls),
            "search_paths": [str(p) for p in i.search_paths], "available_offline": i.available_offline,
            "location": str(i.location) if i.location else None, "size_bytes": i.size_bytes,
            "how_to_get": i.how_to_get,
        } for i in infos]
        print(json.dumps(rows, indent=2))
        return 0
    header = ("MODEL", "STEMS", "OFFLINE", "SIZE", "LICENCE", "WEIGHTS FOUND IN")
    rows = []
    for i in infos:
        where = _home(i.location) if i.location else "not found (see below)"
        rows.append((i.name, _stems(i), "yes" if i.available_offline else "no", _size(i.size_bytes),
                     _short(i.licence.split(" (")[0]), where))
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print()
    print("demucs weights are looked for in order: "
          + ", ".join(_home(p) for _, p in search_dirs(args.model_dir)) + ", then the HuggingFace cache ("
          + _home(infos[0].search_paths[-1].parent) + ").")
    for i in infos:
        if not i.available_offline:
            print(f"{i.name}: {i.how_to_get}")
    return 0
