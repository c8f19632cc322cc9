// faultline UI extras. Every page works without this script; it only adds keyboard
// shortcuts (j/k/Enter in lists, / for search, Ctrl+Enter in the SQL editor), copy buttons,
// relative times that stay current, and a project switcher that applies on change.

const editable = (el) =>
  el instanceof HTMLElement &&
  (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));

function relative(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  const units = [
    [3600, 60, "minute"],
    [86400, 3600, "hour"],
    [30 * 86400, 86400, "day"],
    [365 * 86400, 30 * 86400, "month"],
    [Infinity, 365 * 86400, "year"],
  ];
  for (const [limit, size, name] of units) {
    if (abs < limit) {
      const n = Math.max(1, name === "minute" ? Math.ceil(abs / size) : Math.floor(abs / size));
      const unit = n === 1 ? name : name + "s";
      return seconds < 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
    }
  }
  return "";
}

function refreshTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const date = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(date.getTime())) el.textContent = relative(date);
  }
}

function rows() {
  return [...document.querySelectorAll("[data-list] [data-row]")];
}

function select(list, index) {
  list.forEach((row) => row.classList.remove("selected"));
  const row = list[index];
  if (!row) return;
  row.classList.add("selected");
  const link = row.querySelector("a[data-open]");
  (link || row).focus();
  row.scrollIntoView({ block: "nearest" });
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.metaKey || event.ctrlKey) return;
  if (editable(event.target)) return;
  const list = rows();
  const current = list.findIndex((row) => row.classList.contains("selected"));
  if (event.key === "j") {
    select(list, Math.min(current + 1, list.length - 1));
    event.preventDefault();
  } else if (event.key === "k") {
    select(list, Math.max(current - 1, 0));
    event.preventDefault();
  } else if (event.key === "Enter" && current >= 0 && !(event.target instanceof HTMLAnchorElement)) {
    const link = list[current].querySelector("a[data-open]");
    if (link) link.click();
  } else if (event.key === "/") {
    const search = document.querySelector("[data-search]");
    if (search) {
      search.focus();
      search.select();
      event.preventDefault();
    }
  }
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  } catch {
    button.textContent = "Copy failed";
  }
}

function setUpCopy() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    const target = document.getElementById(button.dataset.copy);
    if (!target || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", () => copy(target.textContent, button));
  }
  for (const button of document.querySelectorAll("[data-copy-url]")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const response = await fetch(button.dataset.copyUrl, { credentials: "same-origin" });
      if (response.ok) await copy(await response.text(), button);
      else button.textContent = `Copy failed (${response.status})`;
    });
  }
}

function setUpForms() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form && select.form.requestSubmit());
    const button = select.form && select.form.querySelector("[data-hide-with-js]");
    if (button) button.hidden = true;
  }
  for (const area of document.querySelectorAll("textarea[data-sql]")) {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        area.form && area.form.requestSubmit();
      }
    });
  }
}

document.addEventListener("keydown", onKey);
setUpCopy();
setUpForms();
refreshTimes();
setInterval(refreshTimes, 60_000);
