// vpn-shop subscriber cabinet: the Mini App's sign-in, theme and Stars invoices, and the copy
// buttons. Written for the cabinet, no library (Telegram's telegram-web-app.js is not loaded:
// Telegram hands the signed initData and the theme to the page in its URL fragment). Without this script the
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

  // Telegram's Mini App protocol, the two calls the cabinet needs: postEvent to the client (the
  // mobile and desktop apps inject TelegramWebviewProxy; the web client frames the page and
  // listens to postMessage) and the events it sends back.
  function postEvent(type, data) {
    var proxy = window.TelegramWebviewProxy;
    if (proxy && typeof proxy.postEvent === 'function') {
      proxy.postEvent(type, JSON.stringify(data));
      return true;
    }
    if (window.parent !== window) {
      window.parent.postMessage(JSON.stringify({ eventType: type, eventData: data }), 'https://web.telegram.org');
      return true;
    }
    return false;
  }
  var handlers = {};
  function receiveEvent(type, data) {
    if (handlers[type]) { handlers[type](data || {}); }
  }
  window.Telegram = window.Telegram || {};
  window.Telegram.WebView = window.Telegram.WebView || {};
  window.Telegram.WebView.receiveEvent = receiveEvent;
  window.TelegramGameProxy_receiveEvent = receiveEvent;
  window.addEventListener('message', function (event) {
    if (event.source !== window.parent) { return; }
    try {
      var message = JSON.parse(event.data);
      if (message && message.eventType) { receiveEvent(message.eventType, message.eventData); }
    } catch (e) { /* not Telegram's */ }
  });

  // An invoice link (https://t.me/$slug or https://t.me/invoice/slug) opened in Telegram's own
  // payment sheet; the order's page reloads when it is paid. Outside Telegram the link is
  // followed as it is.
  function invoiceSlug(url) {
    var match = /^https:\/\/t\.me\/(?:\$|invoice\/)([A-Za-z0-9_=-]+)$/.exec(url);
    return match ? match[1] : null;
  }

  function ready() {
    if (inTelegram) { document.body.classList.add('tg'); }

    document.querySelectorAll('a[data-invoice]').forEach(function (link) {
      link.addEventListener('click', function (event) {
        var slug = invoiceSlug(link.getAttribute('data-invoice'));
        if (!inTelegram || !slug) { return; }
        handlers.invoice_closed = function (data) {
          if (data.slug === slug && data.status === 'paid') {
            // The payment reaches the shop through the bot a moment later.
            setTimeout(function () { window.location.reload(); }, 1500);
          }
        };
        if (postEvent('web_app_open_invoice', { slug: slug })) { event.preventDefault(); }
      });
    });

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
