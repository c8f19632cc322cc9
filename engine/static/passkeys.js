// Passkeys (WebAuthn) on the login and account pages: the browser's navigator.credentials
// calls between the server's two ceremony steps (/auth/passkeys/...). Without this script
// (or a browser without WebAuthn) the passkey buttons stay hidden and every other way to log
// in still works.

const fromB64url = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
};

const toB64url = (buffer) => {
  let raw = "";
  for (const byte of new Uint8Array(buffer)) raw += String.fromCharCode(byte);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));

/// The server's options with their binary fields as the browser wants them.
function creationOptions(options) {
  const pk = { ...options.publicKey };
  pk.challenge = fromB64url(pk.challenge);
  pk.user = { ...pk.user, id: fromB64url(pk.user.id) };
  pk.excludeCredentials = withIds(pk.excludeCredentials);
  return { publicKey: pk };
}

function requestOptions(options) {
  const pk = { ...options.publicKey };
  pk.challenge = fromB64url(pk.challenge);
  pk.allowCredentials = withIds(pk.allowCredentials);
  return { publicKey: pk };
}

function registrationJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: {
      attestationObject: toB64url(r.attestationObject),
      clientDataJSON: toB64url(r.clientDataJSON),
      transports: typeof r.getTransports === "function" ? r.getTransports() : undefined,
    },
    extensions: credential.getClientExtensionResults(),
  };
}

function assertionJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: {
      authenticatorData: toB64url(r.authenticatorData),
      clientDataJSON: toB64url(r.clientDataJSON),
      signature: toB64url(r.signature),
      userHandle: r.userHandle ? toB64url(r.userHandle) : null,
    },
    extensions: credential.getClientExtensionResults(),
  };
}

/// POSTs JSON; answers the parsed body, or throws the server's message.
async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await response.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { detail: text };
  }
  if (!response.ok) throw new Error(json.detail || `${response.status} ${response.statusText}`);
  return json;
}

function say(message) {
  const status = document.getElementById("passkey-status");
  if (!status) return;
  status.textContent = message;
  status.hidden = !message;
}

/// Why a ceremony stopped, in words: the browser's cancel reads as such.
function reason(error) {
  if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
  return error && error.message ? error.message : String(error);
}

/// A same-origin path to go to after logging in.
function nextPath(value) {
  return value && value.startsWith("/") && !value.startsWith("//") ? value : "/";
}

async function login(body, next) {
  say("");
  const started = await post("/auth/passkeys/login", body);
  const credential = await navigator.credentials.get(requestOptions(started.options));
  await post("/auth/passkeys/login/finish", {
    ceremony: started.ceremony,
    credential: assertionJson(credential),
  });
  window.location.assign(nextPath(next));
}

async function register(form) {
  say("");
  const name = form.elements.namedItem("name").value;
  const started = await post("/auth/passkeys/register", {});
  const credential = await navigator.credentials.create(creationOptions(started.options));
  await post("/auth/passkeys/register/finish", {
    ceremony: started.ceremony,
    name,
    credential: registrationJson(credential),
  });
  window.location.assign("/account/?done=passkey-added");
}

function setUp() {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    for (const note of document.querySelectorAll("[data-passkey-unsupported]")) note.hidden = false;
    return;
  }
  for (const el of document.querySelectorAll("[data-passkey]")) el.hidden = false;
  for (const note of document.querySelectorAll("[data-passkey-needs-js]")) note.hidden = true;

  const passwordless = document.getElementById("passkey-login");
  passwordless?.addEventListener("click", () => {
    login({}, passwordless.dataset.next).catch((e) => say(reason(e)));
  });

  const second = document.getElementById("passkey-second");
  second?.addEventListener("click", () => {
    const form = document.getElementById("login-form");
    const email = form.elements.namedItem("email");
    const password = form.elements.namedItem("password");
    if (!email.reportValidity() || !password.reportValidity()) return;
    const next = form.elements.namedItem("next")?.value;
    login({ email: email.value, password: password.value }, next).catch((e) => say(reason(e)));
  });

  const add = document.getElementById("passkey-add");
  add?.addEventListener("submit", (event) => {
    event.preventDefault();
    register(add).catch((e) => say(reason(e)));
  });
}

setUp();
