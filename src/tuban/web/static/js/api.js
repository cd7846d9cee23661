// Small fetch wrapper: JSON, CSRF header on unsafe methods, problem details as errors.
(function () {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    var fromCookie = document.cookie.split("; ").find(function (c) { return c.indexOf("tuban_csrf=") === 0; });
    return fromCookie ? decodeURIComponent(fromCookie.split("=")[1]) : (m ? m.content : "");
  }
  async function call(method, url, body) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") { opts.headers["X-CSRF-Token"] = csrf(); }
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    var res = await fetch(url, opts);
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) { var err = new Error((data && data.title) || res.statusText); err.status = res.status; err.problem = data; throw err; }
    return data;
  }
  // an API error as a page shows it: status, message and the fix the server suggests
  function describe(e) {
    return (e.status ? e.status + " " : "") + e.message + (e.problem && e.problem.hint ? " — " + e.problem.hint : "");
  }
  window.tubanApi = { get: function (u) { return call("GET", u); }, send: call, describe: describe };
})();
