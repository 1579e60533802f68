// The console's entry point: the hash router, the shell (nav, sign-out) and the sign-in page.
// Pages are modules loaded by route; each renders into a fresh <main> (see docs/console.md).

import { ApiError, clearToken, getJSON, getToken, onSignedOut, setToken } from "./api.js";
import { fmtTime, h, replace } from "./dom.js";

const RETURN_KEY = "clusterm.return";
const DEFAULT_ROUTE = "#/nodes";

// Route → module and the page's name (main's data-testid is page-<name>).
const PAGES = {
  nodes: { module: "./nodes.js", name: (path) => (path.length > 1 ? "node" : "nodes") },
  timeline: { module: "./timeline.js", name: () => "timeline" },
  jobs: {
    module: "./jobs.js",
    name: (path) => (path.length >= 4 ? "host" : path.length > 1 ? "job" : "jobs"),
  },
  verbosity: { module: "./verbosity.js", name: () => "verbosity" },
  drift: { module: "./drift.js", name: () => "drift" },
};

let cleanup = null;
let generation = 0;
let signinMessage = null; // {text, kind}: why the sign-in page is shown

export function parseRoute(hash = location.hash) {
  const text = hash.replace(/^#/, "");
  const mark = text.indexOf("?");
  const pathText = mark === -1 ? text : text.slice(0, mark);
  const params = new URLSearchParams(mark === -1 ? "" : text.slice(mark + 1));
  const path = pathText
    .split("/")
    .filter((part) => part !== "")
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
  return { path, params };
}

function freshMain() {
  const old = document.getElementById("main");
  const main = h("main", { id: "main", tabindex: "-1" });
  // A new element each time: a page still rendering after the user moved on writes into a
  // detached one, never into the next page.
  old.replaceWith(main);
  return main;
}

function rememberReturn() {
  const { path } = parseRoute();
  if (path.length > 0 && path[0] !== "signin") {
    sessionStorage.setItem(RETURN_KEY, location.hash);
  }
}

function takeReturn() {
  const target = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  return target && target.startsWith("#/") && !target.startsWith("#/signin") ? target : DEFAULT_ROUTE;
}

function updateShell(route) {
  const signedIn = Boolean(getToken());
  document.querySelector(".nav").hidden = !signedIn;
  document.querySelector("[data-testid=signout]").hidden = !signedIn;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.page === route.path[0]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function navigate() {
  const mine = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  const route = parseRoute();
  if (route.path.length === 0) {
    location.replace(DEFAULT_ROUTE);
    return;
  }
  if (route.path[0] !== "signin" && !getToken()) {
    rememberReturn();
    location.replace("#/signin");
    return;
  }
  updateShell(route);
  const main = freshMain();
  if (route.path[0] === "signin") {
    main.dataset.testid = "page-signin";
    renderSignin(main);
    main.dataset.state = "ready";
    return;
  }
  const page = PAGES[route.path[0]];
  main.dataset.testid = `page-${page ? page.name(route.path) : "unknown"}`;
  main.dataset.state = "loading";
  document.title = `${route.path[0]} · clusterm console`;
  try {
    if (!page) throw new Error(`There is no page at ${location.hash}. Pick one from the menu above.`);
    let module;
    try {
      module = await import(page.module);
    } catch (err) {
      console.error(err);
      throw new Error(`The ${route.path[0]} page could not be loaded (${err.message}).`);
    }
    const done = await module.render(main, route);
    if (mine !== generation) {
      if (typeof done === "function") done();
      return;
    }
    cleanup = typeof done === "function" ? done : null;
    main.dataset.state = "ready";
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof ApiError && err.status === 401) return; // sign-in is already on its way
    console.error(err);
    main.dataset.state = "error";
    main.appendChild(
      h("div", { class: "notice notice-error", role: "alert", "data-testid": "page-error" }, err.message || String(err)),
    );
  }
}

function renderSignin(main) {
  document.title = "Sign in · clusterm console";
  const input = h("input", {
    type: "password",
    name: "token",
    id: "token",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "data-testid": "token-input",
  });
  const error = h("p", { class: "notice notice-error", role: "alert", "data-testid": "signin-error" });
  const button = h("button", { type: "submit", "data-testid": "signin-submit" }, "Sign in");
  if (signinMessage) {
    error.textContent = signinMessage.text;
    if (signinMessage.kind === "info") error.className = "notice notice-info";
  } else {
    error.hidden = true;
  }
  signinMessage = null;
  const form = h(
    "form",
    { class: "signin", "data-testid": "signin-form", novalidate: true },
    h("h1", {}, "Sign in"),
    h(
      "p",
      {},
      "Paste a clusterm token (a viewer token is enough). It stays in this browser tab only and " +
        "is forgotten when the tab closes.",
    ),
    error,
    h("label", { for: "token" }, "Token"),
    input,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showError(error, "Paste a token first (clusterctl tokens create, or the admin token file).");
      return;
    }
    button.disabled = true;
    setToken(token);
    try {
      await getJSON("/version");
      input.value = "";
      location.hash = takeReturn();
    } catch (err) {
      clearToken();
      showError(
        error,
        err instanceof ApiError && err.status === 401
          ? "That token was refused: it is unknown, revoked or expired. Check it and sign in again."
          : err.message,
      );
    } finally {
      button.disabled = false;
    }
  });
  main.appendChild(form);
  input.focus();
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

onSignedOut((message) => {
  // On the sign-in page the form reports a refused token itself.
  if (parseRoute().path[0] === "signin") return;
  rememberReturn();
  signinMessage = { text: message, kind: "error" };
  location.hash = "#/signin";
});

document.querySelector("[data-testid=signout]").addEventListener("click", () => {
  clearToken();
  sessionStorage.removeItem(RETURN_KEY);
  signinMessage = { text: "Signed out: this tab no longer holds a token.", kind: "info" };
  location.hash = "#/signin";
});

// A printout for a ticket says when and from where it was taken.
window.addEventListener("beforeprint", () => {
  replace(
    document.querySelector("[data-testid=printed]"),
    `clusterm console, ${location.href.replace(/^[^#]*/, location.origin + "/ui/")} — printed ${fmtTime(new Date().toISOString())}`,
  );
});

window.addEventListener("hashchange", navigate);
navigate();
