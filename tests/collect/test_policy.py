"""The pure decisions of a collection pass (archiver.collect.policy).

No network, no database, no clock: every boundary is probed with an
injected ``now`` -- one second before it, at it, and after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from archiver.collect.policy import (
    MIGRATION_MIN_KNOWN,
    UIDL_MAX,
    KnownDelivery,
    deletion_due,
    deletions,
    plan_pass,
    plan_pass_without_uidl,
    plan_warnings,
    valid_uidl,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


# ------------------------------------------------------------- deletion_due


@pytest.mark.parametrize("age", [timedelta(0), SECOND, 365 * DAY, 100 * 365 * DAY])
def test_keep_is_never_due(age):
    assert not deletion_due(True, None, NOW - age, NOW)


@pytest.mark.parametrize(
    ("age", "due"),
    [
        (30 * DAY - SECOND, False),  # one second before the boundary
        (30 * DAY - timedelta(microseconds=1), False),
        (30 * DAY, True),  # the boundary instant itself is due
        (30 * DAY + SECOND, True),
        (3650 * DAY, True),
    ],
)
def test_delete_after_boundary(age, due):
    assert deletion_due(True, 30 * DAY, NOW - age, NOW) is due


def test_delete_after_zero_is_due_at_once():
    assert deletion_due(True, timedelta(0), NOW, NOW)
    assert not deletion_due(True, SECOND, NOW, NOW)


@pytest.mark.parametrize("delete_after", [None, 30 * DAY])
@pytest.mark.parametrize("age", [timedelta(0), 365 * DAY])
def test_leave_on_server_false_is_due_at_once(delete_after, age):
    assert deletion_due(False, delete_after, NOW - age, NOW)


def test_boundary_across_time_zones():
    # The same instant written in another zone is the same boundary.
    archived = datetime(2026, 1, 1, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    boundary = datetime(2026, 1, 31, 12, 0, 0, tzinfo=timezone.utc)
    assert not deletion_due(True, 30 * DAY, archived, boundary - SECOND)
    assert deletion_due(True, 30 * DAY, archived, boundary)


# ------------------------------------------------------------- valid_uidl


@pytest.mark.parametrize(
    "uidl",
    ["a", "!", "~", "x" * UIDL_MAX, "".join(chr(c) for c in range(0x21, 0x7F))[:70],
     "000012AB4F3C99D1", "<abc@example.com>", "UID1-1700000000"],
)
def test_valid_uidls(uidl):
    assert valid_uidl(uidl)


@pytest.mark.parametrize(
    "uidl",
    [
        "",
        "x" * (UIDL_MAX + 1),
        "has space",
        " lead",
        "tab\tinside",
        "ctl\x01",
        "nul\x00",
        "del\x7f",
        "cr\r",
        "latin\xe9",
        "é",
        "\u20ac",
    ],
)
def test_invalid_uidls(uidl):
    assert not valid_uidl(uidl)


def test_uidl_limit_is_rfc_1939():
    assert UIDL_MAX == 70


# ------------------------------------------------------------- plan_pass


def known_at(size=100, age=timedelta(0), tombstone=False):
    return KnownDelivery(server_size=size, archived_at=NOW - age, tombstone=tombstone)


def plan(uidls, sizes=None, known=None, *, leave_on_server=True, delete_after=None,
         max_message_size=10**9, max_messages=10**6, max_bytes=10**12, returned=None, now=NOW):
    """plan_pass with generous defaults; ``uidls`` as a list of UIDLs numbered from 1."""
    listing = [(n, u) for n, u in enumerate(uidls, 1)] if uidls and isinstance(uidls[0], str) \
        else list(uidls)
    if sizes is None:
        sizes = {n: 100 for n, _ in listing}
    return plan_pass(
        listing, sizes, known or {}, leave_on_server=leave_on_server, delete_after=delete_after,
        max_message_size=max_message_size, max_messages=max_messages, max_bytes=max_bytes,
        now=now, returned=returned,
    )


def test_new_versus_known():
    p = plan(["u1", "u2", "u3"], known={"u2": known_at()})
    assert p.listed == {1: "u1", 2: "u2", 3: "u3"}
    assert p.fetch == [1, 3]
    assert p.new_count == 2
    assert p.delete_known == []  # keep
    assert p.changed == set()
    assert p.vanished == []
    assert not p.migration


def test_empty_mailbox_and_empty_archive():
    p = plan([])
    assert p.fetch == [] and p.new_count == 0 and p.vanished == [] and not p.migration


def test_fetch_order_is_server_order_whatever_the_listing_order():
    p = plan([(3, "c"), (1, "a"), (2, "b")], {1: 1, 2: 1, 3: 1})
    assert p.fetch == [1, 2, 3]


def test_known_deleted_per_delete_after_at_the_boundary():
    known = {
        "young": known_at(age=30 * DAY - SECOND),
        "exact": known_at(age=30 * DAY),
        "old": known_at(age=31 * DAY),
    }
    p = plan(["young", "exact", "old"], known=known, delete_after=30 * DAY)
    assert p.delete_known == [2, 3]
    assert p.fetch == []


def test_known_never_deleted_with_keep():
    p = plan(["a"], known={"a": known_at(age=20 * 365 * DAY)})
    assert p.delete_known == [] and p.fetch == []


def test_leave_on_server_false_deletes_known_but_plans_no_new_deletion():
    # New messages are deleted only after their store commits: the service
    # decides that per committed message, the plan never lists them.
    p = plan(["old", "new"], known={"old": known_at()}, leave_on_server=False)
    assert p.delete_known == [1]
    assert p.fetch == [2]


def test_tombstones_are_never_fetched():
    known = {"purged": known_at(tombstone=True), "kept": known_at()}
    p = plan(["purged", "kept", "fresh"], known=known)
    assert p.fetch == [3]
    assert 1 not in p.changed
    assert p.new_count == 1


def test_tombstone_deleted_by_policy_like_any_archived_message():
    p = plan(["purged"], known={"purged": known_at(tombstone=True)}, leave_on_server=False)
    assert p.fetch == [] and p.delete_known == [1]


def test_tombstone_with_changed_size_is_neither_fetched_nor_deleted():
    # Rule 5 forbids fetching it; the other size says it may be other mail
    # under a reused UIDL, so deleting it unarchived could lose it.
    p = plan(["purged"], {1: 999}, known={"purged": known_at(size=100, tombstone=True)},
             leave_on_server=False)
    assert p.fetch == [] and p.delete_known == [] and p.changed == set()
    assert p.tombstones_held == [1]


def test_changed_size_is_fetched_again_and_not_deleted():
    known = {"a": known_at(size=100, age=400 * DAY), "b": known_at(size=100, age=400 * DAY)}
    p = plan(["a", "b"], {1: 120, 2: 100}, known=known, delete_after=30 * DAY)
    assert p.changed == {1}
    assert p.fetch == [1]
    assert p.delete_known == [2]  # the unchanged one is due; the changed one is not
    assert p.new_count == 0


@pytest.mark.parametrize("leave_on_server", [True, False])
def test_changed_size_not_deleted_on_the_old_evidence(leave_on_server):
    p = plan(["a"], {1: 99}, known={"a": known_at(size=100)}, leave_on_server=leave_on_server,
             delete_after=timedelta(0) if leave_on_server else None)
    assert p.delete_known == [] and p.fetch == [1] and p.changed == {1}


def test_unknown_sizes_are_not_a_change():
    p = plan(["a", "b"], {2: 5}, known={"a": known_at(size=100), "b": known_at(size=None)})
    assert p.changed == set() and p.fetch == []


def test_returned_uidl_is_fetched_again_like_a_changed_size():
    # Recorded as gone, listed again: the server may have reused it for other mail.
    p = plan(["back", "new"], returned={"back": known_at(age=DAY)}, leave_on_server=False)
    assert p.changed == {1}
    assert p.fetch == [2, 1]  # new ones first, then those to verify
    assert p.delete_known == []
    assert p.new_count == 1


def test_returned_tombstone_is_not_fetched():
    p = plan(["purged"], returned={"purged": known_at(tombstone=True)}, leave_on_server=False)
    assert p.fetch == [] and p.delete_known == [] and p.tombstones_held == [1]
    assert p.new_count == 0


def test_a_uidl_listed_twice_is_shared_and_every_copy_fetched():
    p = plan(["a", "a", "b", "a"])
    assert p.listed == {3: "b"}
    assert p.shared == {"a": [1, 2, 4]}
    assert p.fetch == [3, 1, 2, 4]  # new mail first, the shared ones last
    assert p.new_count == 1  # "b"; what is new under "a" only the content tells
    assert p.by_content(1) and not p.by_content(3) and p.uidl_of(1) is None


def test_a_known_uidl_that_becomes_shared_is_neither_deleted_nor_vanished():
    p = plan(["a", "a"], known={"a": known_at()}, leave_on_server=False)
    assert p.delete_known == [] and p.vanished == []
    assert p.retire == ["a"]  # its delivery gives the UIDL up
    assert p.fetch == [1, 2]
    assert deletions(p, [1, 2], stopping=False) == [1, 2]  # delete at once, once committed
    assert deletions(p, [2], stopping=False) == [2]


def test_a_shared_uidl_of_a_purged_message_is_held():
    p = plan(["a", "a", "b"], known={"a": known_at(tombstone=True)}, leave_on_server=False)
    assert p.shared == {} and p.tombstones_held == [1, 2] and p.retire == []
    assert p.fetch == [3]


def test_shared_uidls_never_use_up_the_budget_new_mail_needs():
    p = plan(["s", "s", "s", "n1", "n2"], max_messages=3)
    assert p.fetch == [4, 5, 1] and p.deferred == 2


def test_shared_uidls_are_due_by_their_own_archive_time():
    p = plan(["a", "a", "b"], known={"b": known_at(age=40 * DAY)}, delete_after=30 * DAY)
    due_at = {1: NOW - timedelta(days=31), 2: NOW - timedelta(days=29)}
    assert deletions(p, [1, 2], stopping=False, archived_at=due_at) == [1, 3]
    assert deletions(p, [1, 2], stopping=True, archived_at=due_at) == []
    assert deletions(p, [2], stopping=False, archived_at=due_at) == [3]


def test_invalid_uidls_quarantined():
    long = "x" * 71
    p = plan([long, "ok", "bad\x01", "a b", ""], known={"ok": known_at()}, leave_on_server=False)
    assert p.quarantined == [long, "bad\x01", "a b", ""]
    assert p.listed == {2: "ok"}
    assert p.fetch == []
    assert p.delete_known == [2]
    assert p.new_count == 0


def test_too_large_is_skipped_at_the_limit():
    p = plan(["at", "over", "under"], {1: 1000, 2: 1001, 3: 999}, max_message_size=1000)
    assert p.too_large == [2]
    assert p.fetch == [1, 3]
    assert p.deferred == 0


def test_max_messages_per_pass():
    p = plan([f"u{i}" for i in range(1, 6)], max_messages=2)
    assert p.fetch == [1, 2]
    assert p.deferred == 3
    assert p.new_count == 5


def test_max_bytes_per_pass():
    p = plan(["a", "b", "c"], {1: 40, 2: 40, 3: 40}, max_bytes=100)
    assert p.fetch == [1, 2] and p.deferred == 1


def test_max_bytes_exactly_filled():
    p = plan(["a", "b"], {1: 50, 2: 50}, max_bytes=100)
    assert p.fetch == [1, 2] and p.deferred == 0


def test_max_bytes_skips_a_big_one_but_takes_smaller_ones_after_it():
    p = plan(["a", "big", "c"], {1: 40, 2: 500, 3: 40}, max_bytes=100)
    assert p.fetch == [1, 3] and p.deferred == 1


def test_one_message_larger_than_the_byte_budget_still_progresses():
    p = plan(["big"], {1: 500}, max_bytes=100)
    assert p.fetch == [1] and p.deferred == 0


def test_big_first_message_goes_alone():
    p = plan(["big", "small"], {1: 500, 2: 10}, max_bytes=100)
    assert p.fetch == [1] and p.deferred == 1


def test_small_first_then_big_waits_for_its_own_pass():
    p = plan(["small", "big"], {1: 10, 2: 500}, max_bytes=100)
    assert p.fetch == [1] and p.deferred == 1
    # next pass: the small one is known, the big one goes alone
    p2 = plan(["small", "big"], {1: 10, 2: 500}, known={"small": known_at(size=10)},
              max_bytes=100)
    assert p2.fetch == [2] and p2.deferred == 0


def test_limits_apply_to_changed_ones_after_new_ones():
    p = plan(["chg", "n1", "n2"], {1: 200, 2: 100, 3: 100}, known={"chg": known_at(size=100)},
             max_messages=2)
    assert p.fetch == [2, 3] and p.deferred == 1 and p.changed == {1}


def test_too_large_does_not_use_the_budget():
    p = plan(["huge", "a"], {1: 10**6, 2: 10}, max_message_size=1000, max_messages=1)
    assert p.too_large == [1] and p.fetch == [2] and p.deferred == 0


def test_vanished():
    p = plan(["a"], known={"a": known_at(), "gone": known_at(), "purged": known_at(tombstone=True)})
    assert sorted(p.vanished) == ["gone", "purged"]
    assert not p.migration


# ------------------------------------------------------------- migration heuristic


def _migration_case(n_known, n_vanished, n_new, *, leave_on_server=False):
    known = {f"old{i}": known_at() for i in range(n_known)}
    listing = [f"old{i}" for i in range(n_vanished, n_known)] + [f"new{i}" for i in range(n_new)]
    return plan(listing, known=known, leave_on_server=leave_on_server)


def test_migration_all_uidls_changed():
    p = _migration_case(12, 12, 12)
    assert p.migration
    assert p.delete_known == []
    assert p.new_count == 12
    assert len(p.fetch) == 12  # archived by content hash, just not deleted


def test_migration_exactly_at_the_thresholds():
    p = _migration_case(MIGRATION_MIN_KNOWN, 5, 5)
    assert p.migration
    assert p.delete_known == []  # the 5 still listed and due are not deleted either


@pytest.mark.parametrize(
    ("n_known", "n_vanished", "n_new"),
    [
        # too few known
        (MIGRATION_MIN_KNOWN - 1, MIGRATION_MIN_KNOWN - 1, MIGRATION_MIN_KNOWN - 1),
        (10, 4, 10),  # too few vanished
        (10, 5, 4),  # too few appeared
        (10, 10, 0),  # everything deleted by someone else: not a migration
        (10, 0, 10),  # a burst of new mail: not a migration
        (10, 0, 0),
    ],
)
def test_not_a_migration_just_below_the_thresholds(n_known, n_vanished, n_new):
    p = _migration_case(n_known, n_vanished, n_new)
    assert not p.migration
    # and the normal policy applies: the still-listed known ones are due
    assert p.delete_known == list(range(1, n_known - n_vanished + 1))


def test_tombstones_count_as_known_for_the_migration_heuristic():
    known = {f"old{i}": known_at(tombstone=i % 2 == 0) for i in range(10)}
    p = plan([f"new{i}" for i in range(10)], known=known)
    assert p.migration


# ------------------------------------------------------------- what to DELE at the end


@pytest.mark.parametrize(("leave", "delete_after", "on_commit"), [
    (False, None, True),  # delete at once
    (True, None, False),  # keep
    (True, 30 * DAY, False),  # delete later: not in the pass that archives it
    (True, timedelta(0), True),  # delete_after = 0d: due the moment it is committed
])
def test_delete_on_commit_follows_the_policy(leave, delete_after, on_commit):
    assert plan(["u1"], leave_on_server=leave, delete_after=delete_after).delete_on_commit \
        is on_commit


def test_deletions_are_only_committed_or_known_messages():
    p = plan(["old", "new1", "new2"], known={"old": known_at()}, leave_on_server=False)
    assert p.fetch == [2, 3] and p.delete_known == [1]
    # new2's batch did not commit: it stays on the server.
    assert deletions(p, [2], stopping=False) == [1, 2]
    assert deletions(p, [], stopping=False) == [1]
    # A pass asked to stop deletes nothing, not even what was due before.
    assert deletions(p, [2, 3], stopping=True) == []


def test_deletions_keep_new_mail_when_the_policy_keeps_it():
    p = plan(["old", "new"], known={"old": known_at(age=31 * DAY)}, delete_after=30 * DAY)
    assert deletions(p, [2], stopping=False) == [1]


def test_a_migration_deletes_nothing_even_what_it_commits():
    known = {f"old{i}": known_at() for i in range(MIGRATION_MIN_KNOWN)}
    p = plan([f"new{i}" for i in range(MIGRATION_MIN_KNOWN)], known=known,
             leave_on_server=False)
    assert p.migration and not p.delete_on_commit
    assert deletions(p, p.fetch, stopping=False) == []


def test_without_uidl_everything_within_the_limits_is_fetched_and_deleted_on_commit():
    sizes = {1: 100, 2: 5000, 3: 100, 4: 100}
    p = plan_pass_without_uidl(sizes, max_message_size=1000, max_messages=2, max_bytes=10**6)
    assert p.without_uidl and p.delete_on_commit and p.listed == {}
    assert (p.fetch, p.too_large, p.deferred, p.new_count) == ([1, 3], [2], 1, 2)
    assert deletions(p, [1], stopping=False) == [1]
    skipped, warnings = plan_warnings(p, sizes, 1000)
    assert skipped == {"too_large": 1, "invalid_uidl": 0, "purged": 0}
    assert warnings[0] == "server has no UIDL: recognising messages by content hash only"
    assert any("message 2 (5000 bytes) exceeds max_message_size (1000 bytes)" in w
               for w in warnings)
    assert any("1 new message(s) left for the next pass" in w for w in warnings)


def test_without_uidl_the_first_message_is_fetched_even_beyond_max_bytes():
    p = plan_pass_without_uidl({1: 500, 2: 10}, max_message_size=10**6, max_messages=10,
                               max_bytes=100)
    assert p.fetch == [1] and p.deferred == 1


def test_plan_warnings_name_what_was_left_on_the_server():
    p = plan(["ok", "bad uidl", "big"], {1: 10, 2: 10, 3: 5000}, max_message_size=1000)
    skipped, warnings = plan_warnings(p, {1: 10, 2: 10, 3: 5000}, 1000)
    assert skipped == {"too_large": 1, "invalid_uidl": 1, "purged": 0}
    assert any("invalid UIDLs" in w and "'bad uidl'" in w for w in warnings)
    assert any("message 3 (UIDL big, 5000 bytes)" in w for w in warnings)
