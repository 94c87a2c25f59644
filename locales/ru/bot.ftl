# Тексты Telegram-бота, русский. HTML Telegram: только <b>, <i>, <a href>, <code>.
# Переменные ({ $name }) подставляет программа; их имена менять нельзя.

## Главное меню

menu-button-buy = 🛒 Купить или продлить
menu-button-status = 📊 Моя подписка
menu-button-trial = 🎁 Пробный период
menu-button-referral = 👥 Пригласить друзей
menu-button-promo = 🏷 Промокод
menu-button-settings = ⚙️ Настройки
menu-button-help = ❓ Помощь
menu-button-cabinet = 📱 Кабинет
button-back = « Назад
button-to-menu = « Меню
button-cancel = Отмена

welcome = <b>Здравствуйте, { $name }!</b>
    Этот бот продаёт доступ к быстрому VPN: выберите тариф, оплатите и получите ссылку на подписку для любого устройства.
welcome-back = <b>С возвращением, { $name }!</b>
menu-text = Выберите действие:
unknown-input = Не удалось распознать сообщение. Выберите действие ниже или отправьте /help.
unknown-command = Команды { $command } нет. Список команд: /help

## Команды (меню рядом с полем ввода)

command-start = Главное меню
command-buy = Купить или продлить VPN
command-status = Моя подписка и ссылка
command-trial = Пробный период
command-referral = Пригласить друзей
command-promo = Применить промокод
command-settings = Язык, email, автопродление
command-help = Помощь и поддержка
command-support = Написать команде магазина

## Пробный период

trial-off = В этом магазине нет пробного периода. Выберите тариф: /buy
trial-used = Пробный период уже использован ({ $date }). Чтобы продолжить, выберите тариф: /buy
trial-starting = <b>Пробный период на { $days_text } начался.</b>
    Ссылка на подписку готовится и через минуту придёт сюда.

## Покупка

buy-choose-plan = <b>Выберите тариф</b>
buy-plan-line = • <b>{ $name }</b>: { $days_text }, { $price }{ $traffic }
buy-plan-stars = { " " }или { $stars } ⭐
buy-plan-traffic = , { $limit } трафика
buy-plan-description = { "  " }<i>{ $description }</i>
buy-plan-button = { $name } — { $price }
buy-no-plans = Сейчас нет тарифов в продаже. Попробуйте позже.
buy-no-providers = Оплата сейчас недоступна. Напишите в поддержку: /help
buy-promo-pending = Промокод <b>{ $code }</b> будет применён при оплате.
buy-renewal-note = Текущая подписка действует до { $date }; новый период добавится к ней.
buy-choose-method = <b>{ $plan }</b>: { $days_text } за { $price }.{ $description }
    Выберите способ оплаты:
pay-yookassa = 💳 Карта, СБП (ЮKassa)
pay-yookassa-auto = 💳 Карта с автопродлением
pay-wata = 💳 Карта (WATA)
pay-stars = ⭐ Telegram Stars ({ $stars })
pay-free = 🎁 Бесплатно по промокоду
checkout-redirect = <b>Заказ №{ $order }: { $amount }</b>
    Нажмите кнопку, чтобы оплатить. Ссылка действует { $minutes } мин. Доступ продлится сразу после подтверждения оплаты, а ссылка придёт сюда.
checkout-pay-button = Оплатить { $amount }
checkout-stars = Счёт на { $amount } — ниже. Доступ продлится сразу после оплаты.
checkout-free = <b>Промокод покрыл этот период.</b> Подписка действует до { $date }; ссылка придёт сюда через минуту.
checkout-error-provider-off = Этот способ оплаты сейчас недоступен. Выберите другой.
checkout-error-unknown-plan = Этот тариф больше не продаётся. Выберите другой: /buy
checkout-error-not-for-stars = Этот тариф нельзя купить за Telegram Stars. Выберите другой способ.
checkout-error-banned = Аккаунт заблокирован. Обратитесь в поддержку: /help
checkout-error-provider = Платёжный сервис не отвечает. Попробуйте через минуту или выберите другой способ.
checkout-error-promo = Промокод нельзя использовать для этого заказа: { $reason }
# What the payer reads at the payment provider (plain text, no HTML).
checkout-description = VPN: { $plan } ({ $days_text })
checkout-description-order = { $description }, заказ { $order }
checkout-invoice-title = VPN { $plan }

## Статус подписки

status-none = Подписки пока нет.
    Начните с пробного периода или выберите тариф.
status-title = <b>Моя подписка</b>
status-plan = Тариф: { $plan }
status-plan-trial = Тариф: пробный период
status-state = Статус: { $state }
state-active = ✅ активна
state-expired = ⛔ истекла
state-disabled = ⛔ отключена
state-limited = ⚠️ трафик исчерпан
status-expires = Действует до: { $date } (ещё { $days_text })
status-expired-at = Закончилась: { $date }
status-traffic = Трафик: { $used } из { $limit }
status-traffic-unlimited = Трафик: { $used } (без ограничений)
status-link = Ссылка: <code>{ $link }</code>
status-link-pending = Ссылка готовится: попробуйте через минуту.
status-auto-renew-on = Автопродление: включено
status-connect = <b>Как подключиться:</b> установите приложение и добавьте в него подписку по ссылке (скопируйте её выше) или отсканируйте QR-код.
status-app = { $platform }: <a href="{ $url }">{ $app }</a>
button-renew-plan = 🔄 Продлить
button-connect = 📲 Как подключиться

## Рефералы

referral-text = <b>Приглашайте друзей и получайте бесплатные дни</b>
    Ссылка для приглашения: <code>{ $link }</code>
    Друг, который придёт по ней, получит { $invitee_days_text }, а вы — { $inviter_days_text } после его первой оплаты.

    Приглашено: { $invited }, из них оплатили: { $paid }
    Начислено дней: { $earned }
referral-share = 📤 Поделиться ссылкой
referral-welcome = Приглашение принято: { $days_text } в подарок.
referral-not-new = Реферальные ссылки работают только для новых пользователей.

## Промокоды

promo-ask = Отправьте промокод (или /cancel).
promo-applied-days = <b>Промокод { $code } применён:</b> подписка продлена на { $days_text } и действует до { $date }.
promo-applied-discount = <b>Промокод { $code } принят:</b> скидка { $discount } на следующую оплату. Выберите тариф: /buy
promo-refused = Промокод { $code } нельзя применить: { $reason }
promo-reason-unknown = такого промокода нет.
promo-reason-not_yet_valid = он ещё не действует.
promo-reason-expired = срок его действия истёк.
promo-reason-used_up = лимит активаций исчерпан.
promo-reason-already_used = он уже использован на этом аккаунте.
promo-reason-not_for_you = он действует только для новых клиентов.
promo-reason-plan_too_short = он действует только для тарифов на { $days_text } и дольше.
promo-reason-not_for_stars = он даёт скидку в рублях и не действует при оплате Telegram Stars.

## Настройки

settings-text = <b>Настройки</b>
    Язык: { $language }
    Email: { $email }
    Автопродление: { $auto_renew }
settings-email-none = не указан
settings-auto-on = включено
settings-auto-off = выключено (чтобы включить, при оплате выберите «Карта с автопродлением»)
settings-language-button = 🌐 English
settings-email-button = ✉️ Указать email
settings-email-remove = Удалить email
settings-auto-off-button = Отключить автопродление
email-ask = Отправьте адрес электронной почты: туда будут приходить чеки и напоминания (или /cancel).
email-saved = Email сохранён: { $email }
email-removed = Email удалён.
email-invalid = Это не похоже на адрес электронной почты ({ $problem }). Отправьте его ещё раз или /cancel.
auto-renew-turned-off = Автопродление отключено. Подписка действует до { $date }.
language-changed = Язык: русский.
cancelled = Отменено.

## Привязка веб-аккаунта (код показывает кабинет)

link-usage = Отправьте код из веб-кабинета, например: /link ABCD2345
link-done = Готово: этот Telegram привязан к вашему аккаунту магазина <b>{ $email }</b>. В боте и в кабинете теперь одна подписка, напоминания тоже приходят сюда.
link-unknown = Этот код не подходит: в нём опечатка, он уже использован или ему больше 15 минут. Откройте кабинет и получите новый.
link-has-history = У этого Telegram уже есть своя подписка, платежи или пробный период в магазине, поэтому его нельзя присоединить к другому аккаунту здесь. Напишите в поддержку: там помогут перенести.
link-already = Этот аккаунт кабинета уже привязан к другому Telegram.

## Помощь

help-text = <b>Помощь</b>
    /buy: купить или продлить VPN
    /status: подписка, ссылка и QR-код
    /trial: пробный период
    /referral: пригласить друзей
    /promo: применить промокод
    /settings: язык, email, автопродление
    /paysupport: помощь с оплатой
    /terms: условия использования
help-support = Поддержка: { $contact }
help-write-here = ✉️ Напишите вопрос прямо сюда (или нажмите кнопку ниже) — команда магазина прочитает его и ответит в этом чате.
paysupport-text = <b>Помощь с оплатой</b>
    Если оплата прошла, а доступ не продлился в течение нескольких минут, напишите в поддержку и укажите номер заказа (он показывается при оплате) — мы проверяем каждый платёж вручную и возвращаем всё, что списано по ошибке.
terms-default = <b>Условия использования</b>
    Доступ предоставляется лично и только для законного использования. Оплаченный период начинается с момента подтверждения оплаты; неиспользованное время добавляется при продлении. Возврат за неиспользованный период — через поддержку.

## Обязательный канал

channel-required = Чтобы пользоваться ботом, подпишитесь на наш канал, затем нажмите «Я подписался».
channel-join = 📢 Подписаться на канал
channel-check = ✅ Я подписался
channel-not-yet = Подписка на канал пока не найдена.

## Промежуточные обработчики (middleware)

banned = Доступ к боту заблокирован. Если это ошибка, обратитесь в поддержку.
too-fast = Слишком много запросов: подождите пару секунд.
error-apology = Извините, у нас что-то пошло не так. Попробуйте ещё раз через минуту.
callback-expired = Эта кнопка устарела. Вот актуальное меню.

## Администрирование

admin-only = Эта команда доступна только администраторам магазина.
admin-menu = <b>Админ-панель</b>
    /stats: пользователи и выручка
    /user &lt;telegram id | @username&gt;: профиль пользователя
    /grant &lt;telegram id&gt; &lt;дни&gt;: начислить дни
    /broadcast: рассылка всем пользователям
    /alerts: оповещения и их отключение
admin-stats = <b>Статистика</b>
    Пользователи: { $users } (новых сегодня: { $new_today })
    Активные подписки: { $active } (пробных: { $trials })
    Платящие пользователи: { $paying }
    Выручка сегодня: { $today }
    Выручка за 30 дней: { $month }
admin-stats-provider = { "  " }{ $provider }: { $amount }
admin-user-usage = Формат: /user &lt;telegram id | @username&gt;
admin-user-not-found = Пользователь { $who } не найден.
admin-user = <b>Пользователь { $name }</b> (id { $id }, Telegram { $telegram_id })
    Язык: { $language }, регистрация: { $joined }
    Email: { $email }
    Заблокирован: { $banned }, заблокировал бота: { $blocked }
    { $subscription }
    Платежи: { $payments }
admin-user-no-sub = Подписки нет.
admin-user-sub = Подписка: { $state } до { $date }, трафик { $used }
admin-user-payment = { "  " }#{ $id } { $date } { $amount } { $provider } { $status }
admin-button-stats = 📈 Статистика
admin-button-broadcast = 📣 Рассылка
admin-broadcast-audience = Кому отправить?
admin-button-grant = ➕ Начислить дни
admin-button-ban = 🚫 Заблокировать
admin-button-unban = ✅ Разблокировать
admin-button-reset = 🔄 Сбросить трафик
admin-button-revoke = 🔑 Отозвать ссылку
admin-grant-usage = Формат: /grant &lt;telegram id&gt; &lt;дни&gt; (1-3650)
admin-grant-ask = Сколько дней начислить пользователю { $name }? Отправьте число (или /cancel).
admin-granted = { $name }: подписка продлена на { $days_text } и действует до { $date }.
admin-banned = Пользователь { $name } заблокирован: его подписка отключена в панели.
admin-unbanned = Пользователь { $name } разблокирован.
admin-traffic-reset = Трафик пользователя { $name } будет сброшен в панели.
admin-link-revoked = Ссылка пользователя { $name } будет заменена; старая перестанет работать.
admin-no-subscription = У пользователя { $name } нет подписки.
admin-broadcast-ask = Отправьте сообщение для всех пользователей (форматирование Telegram сохранится; или /cancel).
admin-broadcast-preview = <b>Предпросмотр</b> сообщения:
admin-broadcast-audience-all = Всем
admin-broadcast-audience-active = Активным подписчикам
admin-broadcast-audience-expired = С истёкшей подпиской
admin-broadcast-audience-trial = На пробном периоде
admin-broadcast-audience-never_paid = Не оплачивали
admin-broadcast-confirm = Получатели: { $audience } ({ $count }). Отправить?
admin-broadcast-send = ✅ Отправить
admin-broadcast-started = Рассылка #{ $id } запущена, получателей: { $count }. Прогресс: GET /api/v1/broadcasts/{ $id }
admin-broadcast-invalid = Сообщение нельзя отправить: { $problem }
