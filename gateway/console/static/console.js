// webhook-gateway console: a little plain JavaScript, no build step, nothing from a CDN.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before a state-changing form post (replay, retry).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
  // Refresh: reload the page (its GET, without the notice of an action already shown) on the
  // button, and every data-refresh seconds while the tab is visible and nothing is being typed.
  const clean = () => {
    const url = new URL(window.location.href);
    for (const key of ["done", "n", "w", "failed", "left", "flash"]) url.searchParams.delete(key);
    return url.toString();
  };
  const reload = () => window.location.replace(clean());
  const button = document.getElementById("refresh");
  if (button) button.addEventListener("click", reload);
  const auto = document.getElementById("auto-refresh");
  const every = Number(document.body.dataset.refresh || 0);
  if (auto) {
    auto.checked = window.localStorage.getItem("console-auto-refresh") !== "off";
    auto.addEventListener("change", () => {
      window.localStorage.setItem("console-auto-refresh", auto.checked ? "on" : "off");
    });
  }
  if (auto && every > 0) {
    window.setInterval(() => {
      const typing = document.activeElement && document.activeElement.matches("input, select");
      const reading = document.querySelector("details[open]");
      if (auto.checked && document.visibilityState === "visible" && !typing && !reading) reload();
    }, every * 1000);
  }
  // Filters apply as soon as they change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  // Times are rendered in UTC by the server; show them in local time, with a relative age.
  const now = Date.now();
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    const seconds = Math.max(0, Math.round((now - at.getTime()) / 1000));
    let ago = `${seconds} s ago`;
    if (seconds >= 86400) ago = `${Math.floor(seconds / 86400)} d ago`;
    else if (seconds >= 3600) ago = `${Math.floor(seconds / 3600)} h ago`;
    else if (seconds >= 60) ago = `${Math.floor(seconds / 60)} min ago`;
    el.textContent = `${at.toLocaleString()} (${ago})`;
  }
});
