"""Table 4, the user study (paper section 5.5): a blind ranking study of generated images.

- :mod:`.study`   the study folder (``study.json``, ``manifest.csv``, masks and images), the
  questions, each participant's order of groups and images, the checks on one answer;
- :mod:`.build`   picking N label maps and one image per method for each (``user-study build``);
- :mod:`.store`   the answers database (SQLite, WAL, one transaction per answer);
- :mod:`.tokens`  invitation tokens (``user-study invite``);
- :mod:`.app`     the web page participants rank on (Flask, served by waitress: ``user-study serve``);
- :mod:`.results` Average Human Ranking, Kendall's W, bootstrap intervals: ``table4.{csv,tex}``.

Ranks 8 in docs/architecture.md: may import :mod:`scpdiff.reporting` (the LaTeX helpers and the
sample-folder naming), :mod:`scpdiff.config`, :mod:`scpdiff.datasets`, :mod:`scpdiff.models` (the
mask rendering), :mod:`scpdiff.utils` and :mod:`scpdiff.errors`. The web side (:mod:`.app`,
:mod:`.store`, :mod:`.study`) never imports torch, so the server starts in a second.
"""
