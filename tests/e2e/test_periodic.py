"""Periodic checkpoints (--interval), pruning (--keep), kill -9 and restart
from the newest image."""

import json

import pytest

from conftest import assert_concatenation, assert_suffix, both_users, wait_until


@both_users
@pytest.mark.timeout(240)
def test_periodic_keep2_kill9_restart_newest(h, reference):
    n, delay = 90, 0.1
    ref = reference(h.wl("count", n, 0))
    launch = h.launch(h.wl("count", n, delay), "--interval", 2, "--keep", 2)

    def three_generations():
        ms = h.manifests()
        return ms and max(ms) >= 3
    wait_until(three_generations, 60, "3 periodic checkpoints (--interval 2)", h.diag,
               alive=launch.running)

    # A manual checkpoint returns after its manifest is written and older
    # checkpoints are pruned: now exactly `keep` checkpoints exist.
    before = len(launch.lines())
    gen_manual, manifest = h.checkpoint()
    after = len(launch.lines())
    assert gen_manual >= 4
    ms = h.manifests()
    assert sorted(ms) == [gen_manual - 1, gen_manual], (
        f"--keep 2: expected manifests {gen_manual - 1} and {gen_manual}, found {sorted(ms)}")
    images = h.images()
    assert len(images) == 2, f"--keep 2: expected 2 images, found {[p.name for p in images]}"
    m = json.loads(open(manifest).read())
    assert m["generation"] == gen_manual
    assert m["interval"] == 2 and m["keep"] == 2, m

    launch.wait_nlines(after + 3)
    h.kill_all()
    pre = launch.lines()

    ms = h.manifests()
    newest = max(ms)
    image = h.manifest_images(ms[newest])
    assert len(image) == 1
    r = h.restart(image[0])
    assert r.wait(120) == 0, h.diag()
    post = r.lines()
    k = assert_suffix(post, ref)
    if newest == gen_manual:
        assert before <= k <= after, (
            f"restart from generation {newest} continued at line {k + 1}, but that checkpoint "
            f"was taken between lines {before} and {after + 1}")
    else:
        assert k >= after, f"restart continued at line {k + 1}, older than generation {newest}"
    assert k <= len(pre)
    assert_concatenation([pre[:k], post], ref)
