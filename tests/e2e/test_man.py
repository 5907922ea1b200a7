"""Man pages are built from the command line's own --help (help2man), so a
subcommand's page names every option its --help does."""

import re
import shutil
import subprocess

import pytest

SUBCOMMANDS = ["launch", "run", "checkpoint", "restart", "status", "inspect", "doctor",
               "coordinator", "quit"]


def _render(page):
    if shutil.which("man") is None:
        pytest.skip("man(1) is not installed")
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                       env={"MANWIDTH": "200", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_page_lists_every_option_of_help(build, sub):
    page = build / "man" / "man1" / f"stasis-{sub}.1"
    if not page.exists() and shutil.which("help2man") is None:
        pytest.skip("help2man is not installed: man pages are not built")
    assert page.exists(), f"{page} was not generated"
    text = _render(page)
    helptext = subprocess.run([str(build / "bin" / "stasis"), sub, "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", helptext))
    assert options, helptext
    # man renders "-" as a Unicode hyphen in places; compare on ASCII.
    flat = text.replace("\u2010", "-").replace("\u2011", "-").replace("\u2212", "-")
    flat = re.sub(r"-\s*\n\s*", "-", flat)
    missing = [o for o in options if o not in flat]
    assert not missing, f"stasis-{sub}(1) lacks {missing}"


def test_image_page_from_the_format_doc(build):
    page = build / "man" / "man5" / "stasis-image.5"
    if not page.exists() and shutil.which("help2man") is None:
        pytest.skip("help2man is not installed: man pages are not built")
    text = _render(page)
    assert "STASISIM" in text and "XXH3-64" in text, text[:2000]
