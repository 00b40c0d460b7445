// The postmortem page's copy button: copies the Markdown of the draft to the clipboard.
// Served from this origin (the pages' Content-Security-Policy allows no inline handler);
// the labels come from the page (data-done, data-failed), in the draft's language.
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    var source = document.getElementById(button.getAttribute('data-copy'));
    var status = document.getElementById(button.getAttribute('data-status'));
    function say(ok) {
      status.textContent = button.getAttribute(ok ? 'data-done' : 'data-failed');
      status.setAttribute('data-copied', ok ? 'yes' : 'no');
    }
    function fallback() {
      source.focus();
      source.select();
      try { return document.execCommand('copy'); } catch (e) { return false; }
    }
    button.addEventListener('click', function () {
      var text = source.value;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { say(true); }, function () { say(fallback()); });
      } else {
        say(fallback());
      }
    });
  });
});
