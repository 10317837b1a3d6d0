from monitor.state.staged import Staged


def test_writes_are_invisible_to_the_backing_map_until_flushed() -> None:
    backing = {"a": 1, "b": 2}
    staged: Staged[str, int] = Staged(backing)
    staged["a"] = 10
    staged["c"] = 3
    del staged["b"]
    assert dict(staged) == {"a": 10, "c": 3} and "b" not in staged
    assert backing == {"a": 1, "b": 2}
    staged.flush()
    assert backing == {"a": 10, "c": 3}


def test_discard_forgets_the_writes() -> None:
    backing = {"a": 1}
    staged: Staged[str, int] = Staged(backing)
    staged["a"] = 5
    staged.discard()
    assert staged["a"] == 1 and backing == {"a": 1}
