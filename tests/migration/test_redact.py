"""redact_url and scrub: a password never survives into text the engine shows."""
from migration.redact import redact_url, scrub, url_password


def test_url_password_is_masked_and_the_rest_kept():
    assert redact_url("postgresql://root:s3cretPW@db.example.com:5432/app?sslmode=require") == \
        "postgresql://root:***@db.example.com:5432/app?sslmode=require"


def test_password_with_at_sign_and_query_password_are_masked():
    out = redact_url("postgres://u:p@ss@w0rd@host/db?password=other&application_name=x")
    assert "p@ss" not in out and "w0rd" not in out and "other" not in out
    assert out.startswith("postgres://u:***@host/db") and "application_name=x" in out


def test_url_without_password_is_unchanged():
    assert redact_url("postgresql://root@127.0.0.1:5432/x") == "postgresql://root@127.0.0.1:5432/x"


def test_libpq_keyword_string_is_masked():
    assert redact_url("host=db user=app password=hunter22 dbname=x") == "host=db user=app password=*** dbname=x"


def test_scrub_removes_known_secret_and_embedded_urls():
    text = "failed: postgresql://a:topsecret@h/db said topsecret again"
    assert "topsecret" not in scrub(text, "topsecret")
    assert url_password("postgresql://a:topsecret@h/db") == "topsecret"


def test_a_password_holding_url_delimiters_is_masked_whole():
    # libpq takes these; urlsplit ends the netloc at the delimiter and would show the rest.
    for password in ("pa#ss", "pa/ss", "pa?ss", "Sup3r/Secret#99"):
        url = f"postgresql://u:{password}@db.example.com:5432/app?sslmode=require"
        assert redact_url(url) == "postgresql://u:***@db.example.com:5432/app?sslmode=require"
        assert url_password(url) == password
        assert password not in scrub(f"connect to {url} failed")
    assert redact_url("postgres://root:pw-1@/db") == "postgres://root:***@/db"
