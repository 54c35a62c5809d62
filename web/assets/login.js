// tally-web's login page: trades the token for a cookie (GET /api/v1/session
// with the token as a bearer header), then opens the display.
"use strict";
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("login-error");
  const token = document.getElementById("token").value.trim();
  err.textContent = "";
  try {
    const r = await fetch("/api/v1/session", {
      headers: { Authorization: "Bearer " + token },
      credentials: "same-origin",
    });
    if (r.status === 204) {
      location.replace("/");
    } else if (r.status === 401) {
      err.textContent = "令牌不正确，请重新输入";
    } else {
      err.textContent = "服务器返回 " + r.status;
    }
  } catch (e) {
    err.textContent = "无法连接服务器";
  }
});
