// Entry point: a tiny hash router between the home page (#/) and a song's page (#/job/<id>).

import { renderHome } from "./home.js";
import { renderResults } from "./results.js";
import { el } from "./util.js";

const view = document.getElementById("view");
let dispose = null;
let generation = 0;

async function route() {
  const mine = ++generation;
  if (dispose) {
    try {
      dispose();
    } catch {
      /* the old page is gone anyway */
    }
    dispose = null;
  }
  window.scrollTo(0, 0);
  const match = location.hash.match(/^#\/job\/([0-9a-f]{32})$/);
  try {
    const cleanup = match ? await renderResults(view, match[1]) : await renderHome(view);
    if (mine !== generation) {
      if (typeof cleanup === "function") cleanup();
    } else dispose = typeof cleanup === "function" ? cleanup : null;
  } catch (err) {
    if (mine !== generation) return;
    view.replaceChildren(
      el(
        "section",
        { class: "card center" },
        el("h2", {}, match ? "This song could not be opened" : "Something went wrong"),
        el("p", {}, err.message || String(err)),
        el("a", { class: "btn primary", href: "#/" }, "Back to all songs"),
      ),
    );
  }
}

window.addEventListener("hashchange", route);
route();
