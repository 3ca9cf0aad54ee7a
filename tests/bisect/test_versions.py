"""Which releases bisect may try: read from a folder of wheels, a file:// PEP 503 index and an HTTP
PEP 691 index, filtered by pre-release, yanked, wheel tags and Requires-Python; where they come from."""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xentcheck.bisect import indexes, versions
from xentcheck.bisect.indexes import IndexConfig

PY = tuple(sys.version_info[:3])
HERE = f"cp{sys.version_info[0]}{sys.version_info[1]}"


def _touch(folder, name, mtime=None):
    path = folder / name
    path.write_bytes(b"not read")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_find_links_folder_gives_versions_and_file_times(tmp_path):
    for i, v in enumerate(["1.0.0", "1.1.0", "1.10.0", "1.2.0"]):
        _touch(tmp_path, f"toyxent-{v}-py3-none-any.whl", 1_700_000_000 + 86400 * i)
    _touch(tmp_path, "toyxent-2.0.0rc1-py3-none-any.whl")  # a pre-release
    _touch(tmp_path, "toyxent-1.3.0.tar.gz")  # an sdist alone: nothing to install without building
    _touch(tmp_path, "toyxent-1.4.0-cp27-cp27m-win32.whl")  # a wheel for another platform
    _touch(tmp_path, "other-9.0-py3-none-any.whl")
    config = indexes.from_options(None, str(tmp_path))
    found = versions.releases("ToyXent", config)  # names compare in their canonical form
    assert sorted(found, key=versions.parse_version) == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.10.0", "2.0.0rc1"]
    assert found["1.1.0"].upload_time == "2023-11-15T22:13:20Z"  # the file's mtime, UTC
    kept, left_out = versions.candidates(found, PY)
    assert kept == ["1.0.0", "1.1.0", "1.2.0", "1.10.0"]  # PEP 440 order, not text order
    assert left_out == {"2.0.0rc1": "pre-release",
                        "1.3.0": f"no wheel for Python {PY[0]}.{PY[1]} on this platform",
                        "1.4.0": f"no wheel for Python {PY[0]}.{PY[1]} on this platform"}
    assert versions.candidates(found, PY, pre=True)[0][-1] == "2.0.0rc1"
    assert versions.candidates(found, PY, keep=("2.0.0rc1",))[0][-1] == "2.0.0rc1"  # --bad names it
    assert versions.between(kept, "1.1.0", "1.10.0") == ["1.1.0", "1.2.0", "1.10.0"]


def test_a_file_index_of_pep503_pages_with_yanked_and_requires_python(tmp_path):
    page = tmp_path / "simple" / "toyxent"
    page.mkdir(parents=True)
    (tmp_path / "files").mkdir()
    links = [("1.0.0", ""), ("1.1.0", ' data-yanked=""'), ("1.2.0", ' data-requires-python="&gt;=3.99"'),
             ("1.3.0", ' data-requires-python="&gt;=3.8"')]
    (page / "index.html").write_text("<html><body>" + "".join(
        f'<a href="../../files/toyxent-{v}-py3-none-any.whl#sha256=00"{attrs}>toyxent-{v}</a>' for v, attrs in links)
        + "</body></html>")
    config = IndexConfig(index_url=(tmp_path / "simple").as_uri())
    found = versions.releases("toyxent", config)
    assert found["1.0.0"].files[0].url == (tmp_path / "files" / "toyxent-1.0.0-py3-none-any.whl").as_uri() + "#sha256=00"
    assert found["1.0.0"].upload_time is None  # PEP 503 pages have no dates
    kept, left_out = versions.candidates(found, PY)
    assert kept == ["1.0.0", "1.3.0"]
    assert left_out["1.1.0"] == "yanked" and "no wheel for Python" in left_out["1.2.0"]
    assert versions.candidates(found, PY, yanked=True)[0] == ["1.0.0", "1.1.0", "1.3.0"]
    assert versions.releases("absent", config) == {}  # no project page: no release, no error


class _Pep691(BaseHTTPRequestHandler):
    body = {"meta": {"api-version": "1.1"}, "name": "toyxent", "files": [
        {"filename": "toyxent-1.0.0-py3-none-any.whl", "url": "/files/a.whl", "hashes": {},
         "upload-time": "2024-11-12T21:52:15.123456Z", "yanked": False},
        {"filename": f"toyxent-1.1.0-{HERE}-{HERE}-manylinux_2_17_x86_64.whl", "url": "/files/b.whl", "hashes": {},
         "upload-time": "2025-06-10T17:00:46Z", "yanked": "broken build", "requires-python": ">=3.8"},
        {"filename": "toyxent-1.2.0.tar.gz", "url": "/files/c.tar.gz", "hashes": {}, "upload-time": "2025-09-15T22:41:22Z"},
        {"filename": "toyxent-1.2.0-py3-none-any.whl", "url": "/files/d.whl", "hashes": {},
         "upload-time": "2025-09-15T22:41:20Z"},
    ]}
    accepts: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.accepts.append(self.headers.get("Accept"))
        if self.path != "/simple/toyxent/":
            self.send_error(404)
            return
        data = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def pep691_index():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pep691)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()


def test_an_http_pep691_index_gives_upload_times_and_yanked_files(pep691_index):
    config = IndexConfig(index_url=pep691_index)
    found = versions.releases("toyxent", config)
    assert "application/vnd.pypi.simple.v1+json" in _Pep691.accepts[-1]
    assert found["1.0.0"].upload_time == "2024-11-12T21:52:15Z"
    assert found["1.2.0"].upload_time == "2025-09-15T22:41:20Z"  # the release's first file
    assert found["1.0.0"].files[0].url == pep691_index.removesuffix("/simple") + "/files/a.whl"
    kept, left_out = versions.candidates(found, PY)
    assert kept == ["1.0.0", "1.2.0"] and left_out == {"1.1.0": "yanked"}
    assert versions.releases("absent", config) == {}


def test_an_index_that_cannot_be_read_is_one_line():
    config = IndexConfig(index_url="http://127.0.0.1:9/simple")  # the discard port: connection refused
    with pytest.raises(versions.IndexReadError, match=r"^cannot read http://127\.0\.0\.1:9/simple/toyxent/"):
        versions.releases("toyxent", config)


def test_the_index_settings_come_from_the_command_line_then_uv_then_pip():
    pip = {"index-url": "https://mirror.example/simple/", "extra-index-url": "file:///opt/a file:///opt/b",
           "find-links": "/opt/wheels"}
    c = indexes.from_options(None, None, environ={}, pip=pip)
    assert c.urls() == ["https://mirror.example/simple", "file:///opt/a", "file:///opt/b"]
    assert c.uv_args() == ["--index-url", "https://mirror.example/simple", "--index-strategy", "unsafe-best-match",
                           "--extra-index-url", "file:///opt/a", "--extra-index-url", "file:///opt/b",
                           "--find-links", "/opt/wheels"]
    assert c.pip_args() == []  # pip reads its own settings
    c = indexes.from_options(None, None, environ={"UV_INDEX_URL": "https://uv.example/simple",
                                                  "UV_INDEX": "internal=https://in.example/simple"}, pip=pip)
    assert c.urls() == ["https://uv.example/simple", "https://in.example/simple", "file:///opt/a", "file:///opt/b"]
    c = indexes.from_options(None, None, environ={}, pip={})
    assert c.urls() == [indexes.PYPI] and "--index-url" not in c.uv_args()  # uv keeps its own default
    c = indexes.from_options("https://only.example/simple/", None, environ={"UV_INDEX_URL": "x"}, pip=pip)
    assert c.urls() == ["https://only.example/simple"] and c.pip_args() == ["--index-url", "https://only.example/simple"]


def test_find_links_on_the_command_line_is_that_folder_alone(tmp_path):
    c = indexes.from_options(None, str(tmp_path), environ={"UV_INDEX_URL": "x"}, pip={"index-url": "y"})
    assert c.urls() == [] and c.find_links == (str(tmp_path),)
    assert c.uv_args() == c.pip_args() == ["--no-index", "--find-links", str(tmp_path)]
    with pytest.raises(ValueError, match="not a folder"):
        indexes.from_options(None, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="not both"):
        indexes.from_options("https://x.example/simple", str(tmp_path))


def test_pips_own_settings_are_read_with_its_variables_over_its_files(tmp_path, monkeypatch):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://files.example/simple\nfind-links = /srv/wheels\n"
                    "[install]\nextra-index-url = https://extra.example/simple\n")
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))  # read last, over the machine's files
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    settings = indexes.pip_settings()
    if not settings:
        pytest.skip("pip cannot list its settings here")
    assert settings["index-url"] == "https://env.example/simple"  # PIP_INDEX_URL over pip.conf
    assert settings["extra-index-url"] == "https://extra.example/simple"
    c = indexes.from_options(None, None, environ={}, pip=settings)
    assert c.urls() == ["https://env.example/simple", "https://extra.example/simple"]
    assert c.find_links == ("/srv/wheels",)
