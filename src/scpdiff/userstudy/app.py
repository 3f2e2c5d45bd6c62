"""The participants' web page: Flask, served by waitress (``scpdiff user-study serve``).

Routes (``TOKEN`` is the invitation token, :mod:`.tokens`):

    GET  /p/TOKEN              the next group to rank (HTML), or the thank-you page
    GET  /p/TOKEN/next         the same as JSON: group, images in this participant's order, progress
    POST /p/TOKEN/answer       {"group": G, "ranks": {"quality": {IMAGE: RANK}, "fidelity": {...}}}
    GET  /p/TOKEN/file/PATH    a mask or image listed in the manifest, nothing else

Every refusal is a 4xx whose body says why (JSON ``{"error": ...}`` for the two API routes, text
otherwise) and changes nothing: an unknown token (404), an unknown group (404), a rank out of
1..k or used twice, a missing image (400), a path outside the study folder (400) or inside it
but not an image of the study (404), a different answer to a group already answered (409). The
page itself is plain HTML with one script (``static/rank.js``): mouse (rank buttons) and
keyboard (type a digit in a rank field; Enter submits).

Flask is the web framework: a synchronous request model matches SQLite's one-writer design, it
has a test client and a long-maintained release line (Pallets); waitress is the WSGI server
(pure Python, threads, maintained by the Pylons project), so the study needs no reverse proxy to
run on a workstation.
"""

from __future__ import annotations

import os
import string
import sys
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file

from .store import AnswerStore
from .study import QUESTIONS, AnswerError, load_study

API_ENDPOINTS = {"next_group", "answer"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _next_state(study, store: AnswerStore, token: str) -> dict:
    participant = store.participant(token)
    done = store.answered_groups(participant.id)
    order = study.participant_order(participant.id)
    state = {"answered": len(done), "total": len(order), "group": None, "images": [], "mask": None, "k": study.k}
    for group_id, images in order:
        if group_id not in done:
            state.update(
                group=group_id,
                mask=f"/p/{token}/file/{study.groups[group_id].mask}",
                images=[{"id": image, "letter": string.ascii_uppercase[i], "url": f"/p/{token}/file/{image}"}
                        for i, image in enumerate(images)],
            )
            break
    return state


def create_app(study_dir: str | os.PathLike) -> Flask:
    study = load_study(study_dir)
    store = AnswerStore(study.database, study.study_id)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # an answer is a few hundred bytes
    app.config["JSON_SORT_KEYS"] = False

    @app.errorhandler(AnswerError)
    def refused(exc: AnswerError):
        if request.endpoint in API_ENDPOINTS:
            return jsonify(error=exc.message), exc.status
        return exc.message + "\n", exc.status, {"Content-Type": "text/plain; charset=utf-8"}

    @app.after_request
    def no_store(response):
        # the page is the participant's progress: a reopened tab must ask again, never show a cached group
        if request.endpoint != "study_file":
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        return ("This is a user study server. Open the invitation link you were given (/p/YOUR-TOKEN).\n",
                200, {"Content-Type": "text/plain; charset=utf-8"})

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/p/<token>")
    def page(token: str):
        state = _next_state(study, store, token)
        if state["group"] is None:
            return render_template("done.html", state=state)
        return render_template("rank.html", state=state, token=token, questions=QUESTIONS)

    @app.get("/p/<token>/next")
    def next_group(token: str):
        return jsonify(_next_state(study, store, token))

    @app.post("/p/<token>/answer")
    def answer(token: str):
        participant = store.participant(token)
        payload = request.get_json(silent=True)
        if payload is None:
            raise AnswerError(400, "send the answer as a JSON body (Content-Type: application/json)")
        group_id, ranks = study.check_answer(payload)
        stored = store.store_answer(participant.id, group_id, ranks, study.groups[group_id].images)
        answered = len(store.answered_groups(participant.id))
        return jsonify(stored=stored, duplicate=not stored, group=group_id, answered=answered,
                       total=len(study.groups)), (201 if stored else 200)

    @app.get("/p/<token>/file/<path:relpath>")
    def study_file(token: str, relpath: str):
        store.participant(token)
        return send_file(study.resolve_file(relpath), max_age=3600)

    return app


def serve(study_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, threads: int = 8) -> None:
    """Serve the study until interrupted; prints the address (``port=0``: a free port) first."""
    from waitress import create_server

    app = create_app(study_dir)
    server = create_server(app, host=host, port=port, threads=threads)
    if host not in LOOPBACK:
        print(f"warning: serving on {host}, reachable from other machines; the tokens are the only guard",
              file=sys.stderr)
    print(f"user study {Path(study_dir)}: serving on http://{host}:{server.effective_port}/ "
          f"(participants open /p/TOKEN; Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
