"""The public surface of the core modules, pinned (httpx style).

Adding or removing a public name is a decision: change it here on purpose,
in the same commit, and say why. Private helpers stay behind a leading underscore.
"""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "archiver.errors": {
        'AmbiguousId', 'ArchiverError', 'AuthError', 'CollectError', 'ConfigError',
        'CorruptContent', 'DatabaseError', 'DatabaseUnavailable', 'ImportSourceError',
        'MessageNotFound', 'MessageTooLarge', 'NetworkError', 'ProtocolError',
        'QuerySyntaxError', 'ServerBusy', 'ServerPermanentError', 'StoreError', 'TLSError',
        'UIDLUnsupported', 'UsageError'
    },
    "archiver.db.unit": {
        'read_only', 'run_transaction', 'unit_of_work'
    },
    "archiver.db.boundary": {
        'database_errors', 'describe_url', 'is_conflict', 'short_error', 'translate'
    },
    "archiver.store.ingest": {
        'MessageStore', 'Origin', 'Outcome', 'StoreResult', 'utcnow'
    },
    "archiver.store.deliveries": {
        'NewDelivery', 'Sighting', 'adopt_uidl', 'confirm_on_server', 'known_by_content_from_now', 'gone_from_server', 'mark_gone',
        'first_seen_by_content', 'mark_gone_by_content', 'on_server', 'record', 'recorded_uidls',
        'recorded_without_uidl', 'supersede', 'tombstone'
    },
    "archiver.store.reading": {
        'Part', 'message_part', 'message_view', 'raw_message'
    },
    "archiver.store.rewrites": {'STATUS_FIELDS', 'is_status_rewrite'},
    "archiver.store.content": {
        'CHUNK_SIZE', 'ContentEncoder', 'MIN_PREFIX', 'StoredMessage', 'by_pk', 'check_content',
        'count',
        'iter_content', 'iter_messages', 'read_bytes', 'read_verified', 'resolve'
    },
    "archiver.collect.collector": {
        'Collector', 'PassProgress', 'PassReport', 'PassStatus', 'expire_warnings',
        'user_capabilities'
    },
    "archiver.collect.policy": {
        'FAILURES', 'KnownDelivery', 'SKIP_REASONS', 'PassPlan', 'UIDL_MAX', 'deletion_due', 'deletions', 'plan_pass',
        'plan_pass_without_uidl', 'plan_warnings', 'retr_size_plausible', 'valid_uidl'
    },
    "archiver.collect.pop3": {
        'POP3Client', 'RetrResult', 'Sink'
    },
    "archiver.audit": {
        'ChainReport', 'GENESIS', 'append', 'current_actor', 'entry_hash', 'verify_chain'
    },
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_public_surface_is_what_we_decided(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) == SURFACE[module]
    assert len(mod.__all__) == len(set(mod.__all__))
    public = {n for n, v in vars(mod).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == module}
    # Everything defined here and not underscored is declared public, and nothing else.
    assert public <= set(mod.__all__), sorted(public - set(mod.__all__))
