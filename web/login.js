// The login form (/login). It works without this script: the server fills
// the message into `<p ... id="error">` and `next` into its hidden field.
// The script only keeps `next` (where to go after the login) when the
// server did not fill it, and says "wrong user name or password" when the
// form came back with 401 and no message.

const form = document.getElementById("login");
const next = form.querySelector('input[name="next"]');
const wanted = new URLSearchParams(location.search).get("next");

if (wanted && !next.value) next.value = wanted;
// Posting to /login?next=... keeps `next` in the URL of a refused attempt's
// page too, so a second try still returns to where the user was going.
if (next.value) form.action = `/login?next=${encodeURIComponent(next.value)}`;

const error = document.getElementById("error");
const nav = performance.getEntriesByType("navigation")[0];
if (!error.textContent.trim() && nav && nav.responseStatus === 401) {
  error.textContent = "wrong user name or password";
}
