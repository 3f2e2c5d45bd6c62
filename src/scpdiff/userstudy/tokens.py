"""``scpdiff user-study invite``: one secret token per participant, and the link that carries it.

A token is 128 random bits (:func:`secrets.token_urlsafe`); it is the participant's only
identity, so nothing about a person needs to be stored. Labels (e.g. "p01") are optional notes.
"""

from __future__ import annotations

import os
import secrets
from typing import Sequence

from ..errors import InputError
from .store import AnswerStore
from .study import load_study


def invitation_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/p/{token}"


def invite(study_dir: str | os.PathLike, count: int = 0, labels: Sequence[str] = (),
           base_url: str = "http://127.0.0.1:8000") -> list[str]:
    """Add ``count`` participants (or one per label) to the study's database; their links."""
    labels = list(labels) or [""] * count
    if not labels:
        raise InputError("invite: give --count N or --labels NAME ...")
    study = load_study(study_dir)
    store = AnswerStore(study.database, study.study_id)
    added = store.add_participants([(secrets.token_urlsafe(16), label) for label in labels])
    return [invitation_link(base_url, p.token) for p in added]
