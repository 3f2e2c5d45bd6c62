// One group's ranking: ranks[question][image] = 1..k (1 best), each rank used once per question.
// Mouse: the rank buttons. Keyboard: a digit typed in a rank field (focus moves to the next
// field); Enter submits when every image has both ranks.
(function () {
  "use strict";
  const form = document.getElementById("ranking");
  if (!form) return;
  const k = Number(form.dataset.k);
  const submit = document.getElementById("submit");
  const status = document.getElementById("status");
  const rows = Array.from(form.querySelectorAll(".rank-row"));
  const inputs = rows.map((row) => row.querySelector(".rank-input"));
  const ranks = {};

  const imageOf = (row) => row.closest(".candidate").dataset.image;

  function render() {
    for (const row of rows) {
      const r = (ranks[row.dataset.question] || {})[imageOf(row)];
      row.querySelector(".rank-input").value = r ? String(r) : "";
      for (const b of row.querySelectorAll(".rank-button")) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.rank) === r));
      }
    }
    submit.disabled = !complete();
  }

  function complete() {
    return rows.every((row) => (ranks[row.dataset.question] || {})[imageOf(row)]);
  }

  function setRank(row, r) {
    const q = row.dataset.question;
    const given = (ranks[q] = ranks[q] || {});
    // a rank belongs to one image: giving it here takes it from the image that had it
    for (const other of Object.keys(given)) {
      if (given[other] === r) delete given[other];
    }
    given[imageOf(row)] = r;
    status.textContent = "";
    status.className = "";
    render();
  }

  for (const row of rows) {
    for (const b of row.querySelectorAll(".rank-button")) {
      b.addEventListener("click", () => setRank(row, Number(b.dataset.rank)));
    }
  }
  inputs.forEach((input, i) => {
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        if (complete()) form.requestSubmit();
        return;
      }
      if (/^[0-9]$/.test(ev.key)) {
        ev.preventDefault();
        const r = Number(ev.key);
        if (r >= 1 && r <= k) {
          setRank(rows[i], r);
          if (i + 1 < inputs.length) inputs[i + 1].focus();
        } else {
          status.textContent = `Ranks go from 1 (best) to ${k}.`;
          status.className = "error";
        }
      } else if (ev.key === "Backspace" || ev.key === "Delete") {
        ev.preventDefault();
        delete (ranks[rows[i].dataset.question] || {})[imageOf(rows[i])];
        render();
      }
    });
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!complete()) return;
    submit.disabled = true;
    status.textContent = "Saving...";
    status.className = "";
    try {
      const res = await fetch(form.dataset.answerUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ group: form.dataset.group, ranks: ranks }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      window.location.reload();
    } catch (err) {
      status.textContent = "Not saved: " + err.message;
      status.className = "error";
      submit.disabled = !complete();
    }
  });
  render();
  if (inputs.length) inputs[0].focus();
})();
