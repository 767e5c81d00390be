#!/usr/bin/env python3
"""Builds the NAME/ADDRESS gazetteers under src/detect/pii/data/ from Faker (MIT licence).

Run: /work/helper/venv-presidio/bin/python scripts/build_gazetteers.py
Faker (https://github.com/joke2k/faker, MIT) ships per-locale first/last name lists and
street suffixes; we keep Latin-script entries only (the detector scans ASCII bytes plus
Latin-1/Latin Extended letters), lower-cased, one per line, sorted.
"""
import importlib, pkgutil, pathlib, unicodedata
import faker.providers.person as person
import faker.providers.address as address

OUT = pathlib.Path(__file__).resolve().parent.parent / "src/detect/pii/data"

def latin(s):
    return all(c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in s if c.isalpha())

def collect(pkg, attrs):
    out = set()
    for m in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{m.name}")
        prov = getattr(mod, "Provider", None)
        for a in attrs:
            v = getattr(prov, a, None)
            if v is None or not isinstance(v, (dict, list, tuple, set)):
                continue
            for x in (v.keys() if isinstance(v, dict) else v):
                if isinstance(x, str) and x.strip() and latin(x) and " " not in x.strip() and len(x) > 1:
                    out.add(x.strip().lower())
    return out

first = collect(person, ["first_names", "first_names_male", "first_names_female", "first_names_nonbinary"])
last = collect(person, ["last_names"])
streets = collect(address, ["street_suffixes", "street_suffixes_long", "street_suffixes_short", "street_prefixes"])
lic = pathlib.Path(person.__file__).resolve().parents[2]
for name, data in [("first_names.txt", first), ("last_names.txt", last)]:
    (OUT / name).write_text("\n".join(sorted(data)) + "\n", encoding="utf-8")
    print(name, len(data))
