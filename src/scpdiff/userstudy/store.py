"""The answers database: SQLite in WAL mode, one transaction per answer.

    participants(id, token UNIQUE, label, created)
    answers(participant, grp, submitted)            PRIMARY KEY (participant, grp)
    ranks(participant, grp, question, image, method, rank)
    meta(key, value)                                 study_id: the manifest the answers belong to

``rank`` is what the participant gave (1 = best); ``method`` is copied from the manifest when the
answer is stored, so the table needs nothing but this file. The primary key on (participant,
group) makes a second submission of the same answer a no-op; a different answer to a group already
answered is refused (409), never merged. Each request opens its own connection (``sqlite3``
connections are not shared between threads); ``BEGIN IMMEDIATE`` takes the write lock before the
duplicate check, so two simultaneous submissions cannot both insert. ``synchronous=FULL``: an
answer acknowledged to the browser survives a killed server.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from .study import AnswerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    participant INTEGER NOT NULL REFERENCES participants(id),
    grp TEXT NOT NULL,
    submitted TEXT NOT NULL,
    PRIMARY KEY (participant, grp)
);
CREATE TABLE IF NOT EXISTS ranks (
    participant INTEGER NOT NULL,
    grp TEXT NOT NULL,
    question TEXT NOT NULL,
    image TEXT NOT NULL,
    method TEXT NOT NULL,
    rank INTEGER NOT NULL,
    PRIMARY KEY (participant, grp, question, image),
    FOREIGN KEY (participant, grp) REFERENCES answers(participant, grp)
);
"""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Participant:
    id: int
    token: str
    label: str


class AnswerStore:
    """The answers of one study (``study_id``) in the SQLite file ``path``."""

    def __init__(self, path: str | os.PathLike, study_id: str):
        self.path = Path(path)
        self.study_id = study_id
        with self.connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('study_id', ?)", (study_id,))
            stored = con.execute("SELECT value FROM meta WHERE key = 'study_id'").fetchone()[0]
        if stored != study_id:
            raise InputError(f"{self.path}: these answers belong to another manifest (study {stored[:12]}, "
                             f"this one is {study_id[:12]}); the study folder was rebuilt after answers came in")

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ participants

    def add_participants(self, tokens: list[tuple[str, str]]) -> list[Participant]:
        """Insert (token, label) pairs in one transaction; returns them with their ids."""
        with self.transaction() as con:
            out = []
            for token, label in tokens:
                cur = con.execute("INSERT INTO participants(token, label, created) VALUES (?, ?, ?)",
                                  (token, label, _now()))
                out.append(Participant(cur.lastrowid, token, label))
        return out

    def participant(self, token: str) -> Participant:
        with self.connect() as con:
            row = con.execute("SELECT id, token, label FROM participants WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise AnswerError(404, "unknown invitation token: ask the study's organiser for your link")
        return Participant(*row)

    def participants(self) -> list[Participant]:
        with self.connect() as con:
            return [Participant(*r) for r in con.execute("SELECT id, token, label FROM participants ORDER BY id")]

    # ------------------------------------------------------------------ answers

    def answered_groups(self, participant_id: int) -> set[str]:
        with self.connect() as con:
            return {r[0] for r in con.execute("SELECT grp FROM answers WHERE participant = ?", (participant_id,))}

    def store_answer(self, participant_id: int, group: str, ranks: dict[str, dict[str, int]],
                     methods: dict[str, str]) -> bool:
        """Store one answer in one transaction. True when stored, False when the same answer was
        already there (a double submit); a different answer to the same group raises a 409."""
        rows = sorted((q, image, methods[image], r) for q, given in ranks.items() for image, r in given.items())
        with self.transaction() as con:
            existing = con.execute("SELECT 1 FROM answers WHERE participant = ? AND grp = ?",
                                   (participant_id, group)).fetchone()
            if existing:
                before = sorted(con.execute("SELECT question, image, method, rank FROM ranks WHERE participant = ? "
                                            "AND grp = ?", (participant_id, group)))
                if before == rows:
                    return False
                raise AnswerError(409, f"group {group} is already answered with other ranks; answers are final")
            con.execute("INSERT INTO answers(participant, grp, submitted) VALUES (?, ?, ?)",
                        (participant_id, group, _now()))
            con.executemany("INSERT INTO ranks(participant, grp, question, image, method, rank) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [(participant_id, group, *r) for r in rows])
        return True

    def rank_rows(self) -> list[tuple[int, str, str, str, str, int]]:
        """(participant, group, question, image, method, rank) of every stored answer."""
        with self.connect() as con:
            return list(con.execute("SELECT participant, grp, question, image, method, rank FROM ranks "
                                    "ORDER BY participant, grp, question, image"))

    def count_answers(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
