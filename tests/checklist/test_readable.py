"""checklist/readable.py: values, guidance and failure causes as people read them."""
from checklist import readable


def test_values_read_as_words_not_python_reprs():
    assert readable.value(True) == "yes" and readable.value(False) == "no"
    assert readable.value(None) == "—" and readable.value("") == "—"
    assert readable.value({"missing_rows": 0.0, "mismatches": 2}) == "missing rows: 0; mismatches: 2"
    assert readable.value([]) == "none" and readable.value(["a", 1.5]) == "a, 1.5"
    html = str(readable.pairs_html({"checked": True, "note": "<b>x</b>", "figures": {"p95_ms": 12.0}}))
    assert '<span class="k">checked</span>: yes' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html
    assert "figures</span>: p95 ms: 12" in html
    for repr_ in ("True", "None", "{'", "0.0"):
        assert repr_ not in html


def test_guidance_is_markdown_with_its_text_repaired_and_no_raw_html():
    html = readable.markdown_html("## ðŸ“‹ Steps\n\nRun `init_db.py` **first**.\n\n"
                                  "<script>alert(1)</script>\n\n[x](javascript:alert(1))")
    assert "<h2>📋 Steps</h2>" in html
    assert "<code>init_db.py</code>" in html and "<strong>first</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html


def test_a_failure_says_its_cause_in_one_sentence():
    assert readable.cause("check-connectivity: connect: server does not support SSL, but SSL "
                          "was required") == ("check-connectivity: the server offers no TLS "
                                              "(the connection requires it).")
    assert readable.cause("env: option 'path' is required") == (
        "The env check needs its 'path' setting: a lead sets it on this runbook's Check "
        "settings page.")
    assert readable.cause("init-db exited with code 3.") == "init-db exited with code 3."
    assert readable.cause("") == ""
