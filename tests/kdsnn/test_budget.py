"""The memory budget: the limit it reads from the machine (or KDSNN_MEMORY_LIMIT) and its one-line refusal."""
import pytest

from kdsnn import budget
from kdsnn.errors import KdsnnError


def test_limit_is_a_share_of_what_meminfo_reports(monkeypatch):
    monkeypatch.delenv(budget.ENV, raising=False)
    monkeypatch.setattr(budget, "_meminfo_available", lambda: 8 * 2 ** 30)
    monkeypatch.setattr(budget, "_cgroup_headroom", lambda: None)
    limit, why = budget.limit_bytes()
    assert limit == 4 * 2 ** 30 and why == "50% of the 8 GB this machine has available"


def test_a_lower_cgroup_limit_wins(monkeypatch):
    monkeypatch.delenv(budget.ENV, raising=False)
    monkeypatch.setattr(budget, "_meminfo_available", lambda: 64 * 2 ** 30)
    monkeypatch.setattr(budget, "_cgroup_headroom", lambda: 2 * 2 ** 30)
    assert budget.available_bytes() == 2 * 2 ** 30


def test_meminfo_is_read_on_this_machine():
    avail = budget._meminfo_available()
    with open("/proc/meminfo") as f:
        line = next(ln for ln in f if ln.startswith("MemAvailable:"))
    # the value changes between the two reads; within 25 % of what the file says a moment later
    assert avail == pytest.approx(int(line.split()[1]) * 1024, rel=0.25)


@pytest.mark.parametrize("text, size", [("512", 512), ("2K", 2048), ("1.5G", 3 * 2 ** 29), ("8gb", 8 * 2 ** 30),
                                        ("3MiB", 3 * 2 ** 20)])
def test_parse_size(text, size):
    assert budget.parse_size(text) == size


def test_a_bad_environment_value_is_one_line(monkeypatch):
    monkeypatch.setenv(budget.ENV, "lots")
    with pytest.raises(KdsnnError, match="KDSNN_MEMORY_LIMIT='lots' is not a size"):
        budget.limit_bytes()


def test_require_names_the_size_and_the_limit(monkeypatch):
    monkeypatch.setenv(budget.ENV, "1G")
    budget.require(2 ** 30, "exactly the limit")  # allowed
    with pytest.raises(KdsnnError) as exc:
        budget.require(3 * 2 ** 30 + 1, "a big array", "use fewer of them")
    assert str(exc.value) == ("a big array would need 3 GB of memory, more than the 1 GB kdsnn allows itself "
                              "(KDSNN_MEMORY_LIMIT=1G); use fewer of them")


def test_fitting(monkeypatch):
    monkeypatch.setenv(budget.ENV, "1000")
    assert budget.fitting(100, 50) == 10
    assert budget.fitting(100, 4) == 4
    assert budget.fitting(2000, 4) == 0


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 2 ** 40, "5 TB")])
def test_human_bytes(n, text):
    assert budget.human_bytes(n) == text
