"""Sealed columns: the one place rows are sealed on the way into the database and opened on the
way out, so no query can forget it.

A model lists its sealed columns with `sealed_text()` or `sealed_json()` and says whose key seals
them in `__sealed_owner__(self)`: the client's id for what is about a client, `coach.<id>` for
the coach's own record. The column type stores only ciphertext and refuses anything else, so a
plaintext value can neither be written nor be compared against in a WHERE clause. The
cryptography lives in a key provider bound to the engine (`bind`), the vault's `FieldKeys` in
holdspace; this module never sees a key.

Sealed values carry the column and the row id (and the client id, where the owner is the coach)
as associated data: a value copied into another row, column or client does not open.
Where a row must be found by a sealed value (a client by email), `lookup` gives the keyed HMAC
stored beside it."""

from __future__ import annotations

import json
import weakref

from sqlalchemy import Column, Text, event, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator

PREFIX = "hsf1:"

_providers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class PlaintextRefused(ValueError):
    """Something tried to write (or compare against) plaintext in a sealed column."""


class Sealed(str):
    """A value exactly as stored: ciphertext."""


class SealedText(TypeDecorator):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or (isinstance(value, str) and value.startswith(PREFIX)):
            return value
        raise PlaintextRefused("a sealed column stores ciphertext only; compare by lookup HMAC")

    def process_result_value(self, value, dialect):
        return None if value is None else Sealed(value)


def sealed_text(*, nullable: bool = True, lookup: str | None = None) -> Column:
    """A sealed text column; `lookup` names a column that gets the value's keyed HMAC."""
    return Column(SealedText, nullable=nullable, info={"sealed": "text", "lookup": lookup})


def sealed_json(*, nullable: bool = True) -> Column:
    return Column(SealedText, nullable=nullable, info={"sealed": "json"})


def bind(engine, provider) -> None:
    """Seal and open this engine's rows with `provider` (seal/open/lookup)."""
    _providers[engine] = provider


def bound(engine):
    """The provider bound to `engine`, or None."""
    return _providers.get(getattr(engine, "engine", engine))


def provider_for(bind_or_session):
    if isinstance(bind_or_session, Session):
        # Asked once per row loaded: kept on the session rather than looked up each time.
        provider = bind_or_session.info.get("hs_field_keys")
        if provider is None:
            provider = bound(bind_or_session.get_bind())
            if provider is not None:
                bind_or_session.info["hs_field_keys"] = provider
    else:
        provider = bound(bind_or_session)
    if provider is None:
        raise RuntimeError("no field keys are bound to this database (models.sealing.bind)")
    return provider


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def lookup(db, value: str) -> str:
    """The keyed HMAC to find a row by (an already normalised) value."""
    return provider_for(db).lookup(value)


# --- what a row seals ------------------------------------------------------------------------

_columns_cache: dict[type, tuple] = {}


def _sealed_columns(cls) -> tuple:
    """(attribute, kind, lookup column) for every sealed column of a mapped class."""
    if cls not in _columns_cache:
        found = []
        for prop in inspect(cls).column_attrs:
            for col in prop.columns:
                if col.info.get("sealed"):
                    found.append((prop.key, col.info["sealed"], col.info.get("lookup")))
        _columns_cache[cls] = tuple(found)
    return _columns_cache[cls]


def associated_data(table: str, attr: str, row_id, owner: str, client_id: str | None) -> bytes:
    """What a sealed value is bound to: its column, its row, its owner and its client."""
    return f"holdspace/{table}.{attr}/{row_id}/{owner}/{client_id or ''}".encode()


def _aad(obj, attr: str, owner: str) -> bytes:
    # A row whose id the database assigns on insert names itself (`__sealed_row__`).
    row_of = getattr(obj, "__sealed_row__", None)
    row_id = row_of() if row_of else inspect(type(obj)).primary_key_from_instance(obj)[0]
    return associated_data(obj.__table__.name, attr, row_id, owner, getattr(obj, "client_id", None))


def _encode(kind: str, value) -> bytes:
    return (json.dumps(value, separators=(",", ":")) if kind == "json" else str(value)).encode()


def _decode(kind: str, raw: bytes):
    text = raw.decode()
    return json.loads(text) if kind == "json" else text


def seal_value(provider, obj, attr: str, kind: str, value) -> Sealed:
    owner = obj.__sealed_owner__()
    if not owner:
        raise PlaintextRefused(f"{type(obj).__name__}.{attr} has no owner to seal it under")
    return Sealed(provider.seal(owner, _encode(kind, value), _aad(obj, attr, owner)))


def open_value(provider, obj, attr: str, kind: str, token: str):
    owner = obj.__sealed_owner__()
    raw = provider.open(owner, token, _aad(obj, attr, owner))
    # None: the owner's key is shredded, and the value with it.
    return None if raw is None else _decode(kind, raw)


def _open_instance(obj, attrs=None) -> None:
    columns = _sealed_columns(type(obj))
    if not columns:
        return
    provider = None
    state = obj.__dict__
    for attr, kind, _ in columns:
        value = state.get(attr)
        if isinstance(value, Sealed) and (attrs is None or attr in attrs):
            provider = provider or provider_for(inspect(obj).session)
            set_committed_value(obj, attr, open_value(provider, obj, attr, kind, value))


@event.listens_for(Session, "before_flush")
def _seal_before_flush(session, _flush_context, _instances) -> None:
    pending = session.info.setdefault("hs_sealed_plaintext", [])
    provider = None
    for obj in list(session.new) + list(session.dirty):
        columns = _sealed_columns(type(obj))
        if not columns:
            continue
        state = inspect(obj)
        # A row that changes owner (a session assigned to a client) is sealed again whole.
        reseal_all = obj in session.new or any(
            state.attrs[a].history.has_changes() for a in obj.__sealed_owner_columns__)
        provider = provider or provider_for(session)
        for attr, kind, lookup_col in columns:
            value = getattr(obj, attr)
            if value is None or isinstance(value, Sealed):
                continue
            if not (reseal_all or state.attrs[attr].history.has_changes()):
                continue
            if lookup_col:
                setattr(obj, lookup_col, provider.lookup(normalise_email(value)))
            setattr(obj, attr, seal_value(provider, obj, attr, kind, value))
            pending.append((obj, attr, value))


@event.listens_for(Session, "after_flush_postexec")
def _restore_after_flush(session, _flush_context) -> None:
    # The row in the database holds ciphertext; the object the code holds goes on reading
    # its own plaintext.
    for obj, attr, value in session.info.pop("hs_sealed_plaintext", []):
        set_committed_value(obj, attr, value)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session) -> None:
    session.info.pop("hs_sealed_plaintext", None)


def register(cls) -> type:
    """Open this model's sealed columns whenever rows are loaded or refreshed."""
    event.listen(cls, "load", lambda obj, _ctx: _open_instance(obj), propagate=True)
    event.listen(cls, "refresh", lambda obj, _ctx, attrs: _open_instance(obj, attrs),
                 propagate=True)
    return cls
