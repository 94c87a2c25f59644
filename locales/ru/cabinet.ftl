# Личный кабинет подписчика (/app), в браузере и как Mini App в Telegram. Простой текст:
# страница экранирует его сама.
app-name = Мой VPN
app-signout = Выйти
app-back = В кабинет

app-signin-title = Вход
app-signin-lead = Введите email: мы пришлём ссылку для входа. Без пароля и без Telegram. Новый адрес — новая учётная запись.
app-signin-email = Email
app-signin-submit = Прислать ссылку для входа
app-signin-bad-email = Это не похоже на адрес почты. Проверьте и попробуйте снова.
app-signin-too-many = Слишком много запросов ссылки. Попробуйте через { $n ->
    [one] { $n } минуту
    [few] { $n } минуты
   *[other] { $n } минут
}.
app-signin-email-off = Вход по почте в этом магазине недоступен. Откройте кабинет из Telegram-бота магазина.
app-signin-telegram = Входим через Telegram…

app-mail-sent-title = Проверьте почту
app-mail-sent-text = Если адрес верный, ссылка для входа уже отправлена. Она действует 15 минут и один раз.
app-mail-sent-hint = Письма нет? Загляните в «Спам» или запросите новую ссылку.
app-mail-sent-again = Запросить новую ссылку
app-mail-subject = Ссылка для входа
app-mail-text = Откройте ссылку, чтобы войти в кабинет VPN:
    { $link }
    Она действует 15 минут и один раз. Если вы её не запрашивали, просто удалите письмо.

app-link-title = Вход
app-link-text = Нажмите кнопку, чтобы войти на этом устройстве.
app-link-submit = Войти
app-link-gone-title = Ссылка больше не действует
app-link-gone-text = Ссылка для входа действует 15 минут и только один раз. Запросите новую.

app-hello = Здравствуйте
app-done-trial = Пробный период начался. Ссылка появится здесь через минуту; если нет — обновите страницу.
app-done-trial-used = Пробный период на этой учётной записи уже использован.

app-sub-title = Моя подписка
app-sub-none = Подписки пока нет.
app-sub-plan-trial = Пробный период
app-sub-until = До
app-sub-days-left = { $n ->
    [one] остался { $n } день
    [few] осталось { $n } дня
   *[other] осталось { $n } дней
}
app-sub-ended = Закончилась
app-sub-traffic = Трафик
app-sub-traffic-of = из
app-sub-traffic-unlimited = без ограничения
app-sub-link = Ссылка подписки
app-sub-link-pending = Ссылка готовится. Обновите страницу через минуту.
app-sub-link-secret = По этой ссылке вашим VPN может пользоваться кто угодно: не пересылайте её.
app-copy = Скопировать
app-copied = Скопировано
app-qr = Отсканируйте приложением VPN на другом устройстве.
app-import-title = Добавить в приложение одним нажатием
app-import-hint = Приложение должно быть установлено. Если ничего не произошло, скопируйте ссылку и добавьте её в приложении вручную.
app-howto-title = Как подключиться
app-howto-android-1 = Установите Hiddify, v2rayNG, v2RayTun или Happ из Google Play.
app-howto-android-2 = Нажмите кнопку приложения выше: оно откроется и добавит вашу подписку.
app-howto-android-3 = Выберите новый профиль и нажмите «Подключиться»; разрешите VPN-подключение, когда Android спросит.
app-howto-ios-1 = Установите Hiddify, Streisand, v2RayTun, Happ или FoXray из App Store.
app-howto-ios-2 = Нажмите кнопку приложения выше: оно откроется и добавит вашу подписку.
app-howto-ios-3 = Выберите профиль и включите VPN; разрешите добавить конфигурацию VPN, когда iOS спросит.
app-howto-desktop-1 = Установите Hiddify или Happ (Windows, macOS, Linux) либо FoXray (macOS) с сайта приложения.
app-howto-desktop-2 = Нажмите кнопку приложения выше или скопируйте ссылку и добавьте её в приложении как новую подписку из буфера обмена.
app-howto-desktop-3 = Подключитесь. На телефоне отсканируйте QR-код ниже приложением.
app-platform-android = Android
app-platform-ios = iPhone и iPad
app-platform-desktop = Компьютер

app-trial-title = Бесплатный пробный период
app-trial-text = { $n ->
    [one] Попробуйте VPN бесплатно { $n } день.
    [few] Попробуйте VPN бесплатно { $n } дня.
   *[other] Попробуйте VPN бесплатно { $n } дней.
}
app-trial-submit = Начать пробный период

app-payments-title = Платежи
app-payments-none = Платежей пока нет.
app-payment-days = { $n ->
    [one] { $n } день
    [few] { $n } дня
   *[other] { $n } дней
}

app-referral-title = Пригласите друзей
app-referral-invitee = { $n ->
    [one] Друг, пришедший по вашей ссылке, получит { $n } бонусный день.
    [few] Друг, пришедший по вашей ссылке, получит { $n } бонусных дня.
   *[other] Друг, пришедший по вашей ссылке, получит { $n } бонусных дней.
}
app-referral-inviter = { $n ->
    [one] Вы получите { $n } день, когда он впервые оплатит.
    [few] Вы получите { $n } дня, когда он впервые оплатит.
   *[other] Вы получите { $n } дней, когда он впервые оплатит.
}
app-referral-invited = Приглашено
app-referral-paid = Оплатили
app-referral-earned = Заработано дней
app-referral-off = Ссылка-приглашение появится, когда бот магазина запущен.

app-account-title = Учётная запись
app-account-email = Email
app-account-telegram = Telegram
app-account-linked = привязан
app-account-not-linked = не привязан
app-account-email-verified = для входа
app-account-email-unverified = не подтверждён: для входа не годится
app-email-change-label = Сменить email для входа
app-email-add-label = Email, чтобы входить без Telegram
app-email-change-submit = Прислать ссылку
app-email-change-hint = Мы отправим ссылку на этот адрес; он станет email для входа, когда вы её откроете.
app-done-email = Email подтверждён: теперь по нему можно входить.
app-confirm-mail-subject = Подтвердите email
app-confirm-mail-text = Откройте ссылку, чтобы сделать { $email } адресом для входа в кабинет VPN:
    { $link }
    Она действует 15 минут и один раз. Если вы её не запрашивали, просто проигнорируйте письмо.
app-confirm-title = Подтвердите email
app-confirm-text = Нажмите кнопку, чтобы сделать этот адрес email для входа в ваш аккаунт VPN.
app-confirm-submit = Подтвердить
app-confirmed-title = Email подтверждён
app-confirmed-text = Теперь по этому адресу можно входить в кабинет VPN.
app-confirm-taken-title = Этот email занят
app-confirm-taken = По этому адресу уже входят в другой аккаунт, поэтому ничего не изменилось. Укажите другой адрес или напишите в поддержку.

app-done-auto-renew-off = Автопродление выключено. Доступ действует до даты окончания; продлевайте вручную, когда захотите.
app-account-auto-renew = Автопродление
app-account-auto-renew-on = включено
app-account-auto-renew-off = выключено
app-account-auto-renew-turn-off = Выключить автопродление
app-account-other-language = English
app-account-other-language-code = en

app-telegram-link = Привязать Telegram
app-telegram-title = Привязка Telegram
app-telegram-text = { $n ->
    [one] Отправьте этот код боту магазина в Telegram в течение { $n } минуты:
    [few] Отправьте этот код боту магазина в Telegram в течение { $n } минут:
   *[other] Отправьте этот код боту магазина в Telegram в течение { $n } минут:
}
app-telegram-open = Открыть бота с этим кодом
app-telegram-or = Или отправьте боту сообщение:
app-telegram-after = После привязки в боте и в кабинете будет одна подписка, напоминания будут приходить и в Telegram. Входить сюда можно по-прежнему по email.

app-buy-title = Купить доступ
app-buy-renew = Продлить или сменить тариф
app-buy-plan = Тариф
app-buy-promo = Промокод (если есть)
app-buy-method = Способ оплаты
app-buy-submit = Перейти к оплате
app-buy-stars-hint = Оплата в Telegram: цена в звёздах — на следующей странице.
app-buy-auto-renew = Продлевать автоматически с этой карты
app-buy-auto-renew-hint = Только при оплате картой (ЮKassa): карта сохраняется и списание происходит до окончания доступа. Выключить можно здесь в любой момент.
app-buy-off = Сейчас здесь ничего нельзя купить. Попробуйте позже.
app-buy-choose-method = Выберите способ оплаты.
app-buy-error-provider-off = Этот способ оплаты сейчас недоступен. Выберите другой.
app-buy-error-unknown-plan = Этот тариф больше не продаётся. Выберите другой.
app-buy-error-banned = Ваша учётная запись заблокирована. Напишите в поддержку.
app-buy-error-provider = Платёжный сервис не отвечает. Попробуйте через минуту или выберите другой способ.
app-buy-error-promo = Промокод нельзя применить к этому заказу: { $reason }

app-order-title = Заказ
app-order-pay-text = Оплатите на странице платёжного сервиса — он вернёт вас сюда.
app-order-pay = Оплатить
app-order-waiting = Ждём подтверждения оплаты.
app-order-reload = Проверить ещё раз
app-order-paid = Оплачено. Доступ теперь действует до
app-order-failed = Этот заказ не оплачен. Можно оформить новый.
