// vpn-shop subscriber cabinet: the Mini App's sign-in and theme, and the copy buttons. Written
// for the cabinet, no library (Telegram's telegram-web-app.js is not loaded: Telegram hands the
// signed initData and the theme to the page in its URL fragment). Without this script the
// cabinet still works in a browser through its plain forms.
(function () {
  'use strict';

  // Telegram opens a Mini App with #tgWebAppData=<initData>&tgWebAppThemeParams=<json>&…
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var initData = fragment.get('tgWebAppData');
  var theme = fragment.get('tgWebAppThemeParams');
  var inTelegram = !!initData || !!sessionStorage.getItem('vpnshop-tg-theme');

  // Theme: Telegram's colours as CSS custom properties (kept for the pages that follow).
  try {
    if (theme) { sessionStorage.setItem('vpnshop-tg-theme', theme); }
    var saved = theme || sessionStorage.getItem('vpnshop-tg-theme');
    if (saved) {
      var params = JSON.parse(saved);
      Object.keys(params).forEach(function (key) {
        if (/^[a-z_]+$/.test(key) && /^#[0-9a-fA-F]{3,8}$/.test(params[key])) {
          document.documentElement.style.setProperty('--tg-theme-' + key.replace(/_/g, '-'), params[key]);
        }
      });
    }
  } catch (e) { /* no theme: the page keeps its own colours */ }

  function ready() {
    if (inTelegram) { document.body.classList.add('tg'); }

    // Sign-in inside Telegram: post initData once, instead of the email form.
    var form = document.getElementById('telegram-signin');
    if (form && initData) {
      form.elements.init_data.value = initData;
      form.hidden = false;
      var email = document.getElementById('email-signin');
      if (email) { email.hidden = true; }
      // The fragment is not needed any more (and is not left in the history).
      history.replaceState(null, '', window.location.pathname + window.location.search);
      form.submit();
    }

    // Copy buttons: data-copy names the input whose value is copied.
    document.querySelectorAll('button[data-copy]').forEach(function (button) {
      button.addEventListener('click', function () {
        var input = document.getElementById(button.getAttribute('data-copy'));
        if (!input) { return; }
        var done = function () {
          var label = button.textContent;
          button.textContent = button.getAttribute('data-copied') || label;
          setTimeout(function () { button.textContent = label; }, 2000);
        };
        input.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () {
            document.execCommand('copy');
            done();
          });
        } else {
          document.execCommand('copy');
          done();
        }
      });
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', ready);
  } else {
    ready();
  }
})();
