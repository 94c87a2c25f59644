# Веб-консоль администратора (/admin). Простой текст: страница его экранирует.
console-name = Консоль vpn-shop
nav-label = Главное меню
nav-dashboard = Сводка
nav-users = Пользователи
nav-logout = Выйти
role-viewer = наблюдатель
role-operator = оператор
role-admin = администратор
yes = да
no = нет

error-forbidden = Нет доступа
error-not-found = Не найдено
error-conflict = Сейчас это сделать нельзя
error-invalid = Проверьте введённые данные
error-too-many = Слишком много попыток
error-server = Что-то сломалось на нашей стороне
error-other = Запрос не выполнен
error-back = К сводке

login-title = Вход
login-username = Имя пользователя
login-password = Пароль
login-submit = Войти
login-hint = Учётные записи создаются командой «vpn-shop admin create» на сервере.
login-wrong = Неверное имя пользователя или пароль.
login-missing = Введите имя пользователя и пароль.
login-locked = Слишком много неудачных попыток. Попробуйте через { $n ->
    [one] { $n } минуту
    [few] { $n } минуты
   *[other] { $n } минут
}.

dash-subscriptions = Подписки
dash-active = активных подписок
dash-trials = пробных периодов идёт
dash-conversion = пробный → платный
dash-expiring = закончатся за 3 дня
dash-alerts = Открытые оповещения
dash-dead-jobs = упавших задач
dash-sales-chart = Продажи по дням за 30 дней
dash-no-sales = За 30 дней продаж ещё нет — поделитесь ссылкой на бота или пробным периодом.
dash-chart-max = Верх шкалы: { $n ->
    [one] { $n } продажа
    [few] { $n } продажи
   *[other] { $n } продаж
} в день.
dash-no-sales-period = За этот период продаж нет.
dash-provider = Способ оплаты
dash-sales = Продажи
dash-revenue = Выручка
dash-refunded = возвращено
dash-total = Итого
dash-panel = Синхронизация с панелью
dash-no-panel = Панель не подключена: задайте MARZBAN_URL, чтобы выдавать доступ.
dash-no-syncs = Синхронизаций ещё не было.
dash-no-alerts = Всё спокойно.
dash-generated = Данные на
period-today = Сегодня
period-7d = 7 дней
period-30d = 30 дней
provider-yookassa = ЮKassa
provider-wata = Wata
provider-stars = Telegram Stars
provider-free = Бесплатно (промокод)
sync-subscriptions = Подписки
sync-status = Статусы
sync-traffic = Трафик
sync-stats = Статистика панели
sync-cleanup = Очистка
run-running = идёт
run-succeeded = успешно
run-failed = ошибка
alert-kind-payment-flagged = Подозрительный платёж
alert-kind-refund-made = Возврат
alert-kind-job-dead = Задача не выполнилась
alert-kind-panel-down = Панель недоступна
alert-kind-sync-failing = Синхронизация не проходит
alert-kind-backup-failed = Резервная копия не создана
alert-kind-webhook-probing = Подбор вебхуков
alert-kind-paid-unprovisioned = Оплачено, но доступа нет
alert-kind-sale = Продажа
alert-kind-digest = Дайджест

users-search-label = Поиск по id (#12), Telegram id, имени пользователя или email
users-search-placeholder = 123456789, @name, name@example.com
users-search = Найти
users-id-match = Пользователь с этим id:
users-found = { $n ->
    [one] { $n } пользователь
    [few] { $n } пользователя
   *[other] { $n } пользователей
}
users-none-yet = Пользователей пока нет — они появятся, когда запустят бота.
users-none-found = Никого не нашлось. Проверьте написание или ищите по Telegram id.
pager = Страницы
pager-prev = Назад
pager-next = Дальше

user-title = Пользователь
user-id = Id
user-no-name = без имени
user-name = Имя
user-telegram = Telegram id
user-web-only = Только веб (без Telegram)
user-subscription = Подписка
user-joined = С нами с
user-banned = заблокирован
user-bot-blocked = заблокировал бота
user-trial = пробная
user-until = до
user-no-subscription = Подписки нет.
user-status = Статус
user-plan = Тариф
user-expires = Заканчивается
user-days-left = { $n ->
    [one] остался { $n } день
    [few] осталось { $n } дня
   *[other] осталось { $n } дней
}
user-traffic = Трафик за период
user-traffic-lifetime = Трафик всего
user-panel = Учётная запись в панели
user-panel-unknown = ещё не синхронизирована
user-online = Был в сети
user-synced = Синхронизирован
user-auto-renew = Автопродление
user-link = Ссылка подписки
user-profile = Профиль
user-email = Email
user-last-seen = Последний визит
user-trial-used = Пробный период взят
user-note = Заметка
user-referrals = Рефералы
user-invited-by = Пригласил
user-invited = Пригласил сам
user-invited-paid = оплатили
user-bonus-days = Бонусные дни (заработано + получено)
user-actions = Действия
user-payments = Платежи
user-no-payments = Платежей пока нет.
user-notifications = Уведомления
user-no-notifications = Этому пользователю ещё ничего не отправлялось.
status-active = активна
status-expired = истекла
status-disabled = отключена
payment-amount = Сумма
payment-days = Дней
payment-created = Создан
payment-pending = ожидает
payment-succeeded = оплачен
payment-canceled = отменён
payment-expired = истёк
payment-refunded = возвращён
notification-kind = Тип
notification-channel = Канал

action-days = Сколько дней добавить
action-reason = Причина (останется в журнале)
action-extend = Продлить…
action-email = Сменить email…
action-note = Сохранить заметку…
action-ban = Заблокировать…
action-unban = Разблокировать…
action-reset-traffic = Сбросить трафик…
action-revoke-link = Отозвать ссылку…

confirm-title-extend = Продлить подписку?
confirm-title-ban = Заблокировать пользователя?
confirm-title-unban = Разблокировать пользователя?
confirm-title-reset-traffic = Сбросить трафик?
confirm-title-revoke-link = Отозвать ссылку подписки?
confirm-title-email = Сменить email?
confirm-title-note = Изменить заметку?
confirm-what-extend = Дни добавятся к оставшемуся сроку (закончившаяся подписка начнётся заново с текущего момента); панель обновится.
confirm-what-ban = Подписка сразу отключится в панели; дни сохранятся и вернутся после разблокировки.
confirm-what-unban = Подписка снова включится в панели.
confirm-what-reset-traffic = Счётчик трафика за период в панели обнулится.
confirm-what-revoke-link = Старая ссылка сразу перестанет работать; новую пользователь получит в боте.
confirm-what-email = Чеки и уведомления будут приходить на этот адрес; оставьте поле пустым, чтобы удалить его.
confirm-what-note = Заметку видят только администраторы, пользователь её не видит. Оставьте поле пустым, чтобы удалить её.
confirm-do-extend = Да, продлить
confirm-do-ban = Да, заблокировать
confirm-do-unban = Да, разблокировать
confirm-do-reset-traffic = Да, сбросить
confirm-do-revoke-link = Да, отозвать ссылку
confirm-do-email = Да, сменить
confirm-do-note = Да, сохранить
confirm-expiry-now = Заканчивается сейчас
confirm-expiry-after = Будет заканчиваться
confirm-email-now = Сейчас
confirm-email-after = Будет
confirm-cancel = Отмена
done-extend = Продлено. Панель обновляется.
done-ban = Заблокирован.
done-unban = Разблокирован.
done-reset-traffic = Сброс трафика поставлен в очередь.
done-revoke-link = Отзыв ссылки поставлен в очередь.
done-email = Email сохранён.
done-note = Заметка сохранена.

# Операции: рассылки, задачи, синхронизации, журнал, администраторы
nav-broadcasts = Рассылки
nav-jobs = Задачи
nav-syncs = Синхронизации
nav-audit = Журнал
nav-admins = Администраторы

bc-title = Рассылка
bc-compose = Новая рассылка
bc-none = Рассылок пока не было — напишите первую, чтобы рассказать подписчикам о новых серверах или скидке.
bc-message = Сообщение
bc-audience = Получатели
bc-segment = Кто
bc-language = Язык
bc-language-any = любой язык
bc-handled = Обработано
bc-remaining = Ещё не отправлено
bc-text = Текст (Telegram HTML)
bc-text-hint = Можно: <b>жирный</b>, <i>курсив</i>, <u>, <s>, <a href="…">ссылка</a>, <code>, <pre>, <blockquote>, <tg-spoiler>. Символы < > & пишите как &lt; &gt; &amp;.
bc-button-text = Текст кнопки (необязательно)
bc-button-url = Ссылка кнопки
bc-preview = Предпросмотр
bc-preview-do = Показать
bc-preview-empty = Напишите сообщение и нажмите «Показать»: увидите его так, как увидят подписчики, и сколько человек его получат.
bc-field-text = Текст
bc-field-button-text = Текст кнопки
bc-field-button-url = Ссылка кнопки
bc-field-segment = Получатели
bc-field-language = Язык
bc-audience-size = { $n ->
    [one] Сейчас его получит { $n } пользователь
    [few] Сейчас его получат { $n } пользователя
   *[other] Сейчас его получат { $n } пользователей
}
bc-audience-empty = Сейчас в эту группу никто не входит: выберите другую.
bc-send-what = Отправка начнётся сразу, вернуть её нельзя; пока она идёт, её можно отменить. Заблокированные и те, кто заблокировал бота, пропускаются.
bc-send = { $n ->
    [one] Отправить { $n } пользователю
   *[other] Отправить { $n } пользователям
}
bc-status-draft = черновик
bc-status-queued = в очереди
bc-status-running = идёт отправка
bc-status-completed = завершена
bc-status-canceled = отменена
bc-total = Получателей
bc-sent = Отправлено
bc-failed = Ошибок
bc-blocked = Заблокировали бота
bc-eta = Осталось
bc-created = Создана
bc-waiting = Ждёт начала
bc-started = Начата
bc-finished = Закончена
bc-reload = Обновите страницу, чтобы увидеть свежие цифры
bc-cancel = Отменить рассылку…
bc-cancel-title = Отменить рассылку?
bc-cancel-what = Те, кто ещё не получил сообщение, его не получат. У получивших оно останется.
bc-cancel-do = Да, отменить
bc-canceled = Отменена.
segment-all = все
segment-active = с действующей подпиской
segment-expired = с закончившейся подпиской
segment-trial = на пробном периоде
segment-never-paid = ни разу не платившие
language-ru = русский
language-en = английский
eta-seconds = { $n ->
    [one] около { $n } секунды
   *[other] около { $n } секунд
}
eta-minutes = { $n ->
    [one] около { $n } минуты
   *[other] около { $n } минут
}

jobs-kind = Тип
jobs-found = { $n ->
    [one] { $n } задача
    [few] { $n } задачи
   *[other] { $n } задач
}
jobs-none-dead = Остановленных задач нет — всё, что должно было случиться, случилось.
jobs-none = Под фильтр ничего не подходит.
jobs-attempts = Попытки
jobs-finished = Остановлена
jobs-run-at = Срок
jobs-error = Последняя ошибка
jobs-payload = Данные
jobs-retry = Повторить
jobs-discard = Удалить…
jobs-discard-title = Удалить задачу
jobs-discard-what = Задача будет удалена, её работа не будет сделана; останется только запись в журнале. Если причина устранена, лучше повторить.
jobs-discard-do = Да, удалить
jobs-done-retry = Снова в очереди
jobs-done-discard = Удалена
job-pending = ждёт
job-running = выполняется
job-done = выполнена
job-dead = остановлена

syncs-run = Запустить
syncs-done = закончена
syncs-failed = не удалась — ошибка в истории ниже
syncs-never = Ещё не запускалась.
syncs-history = История
syncs-started = Начало
syncs-checked = проверено
syncs-created = создано
syncs-updated = обновлено
syncs-result = Итог
syncs-errors = ошибок

audit-admin = Администратор
audit-action = Действие (user.ban или user. — все такие)
audit-found = { $n ->
    [one] { $n } запись
    [few] { $n } записи
   *[other] { $n } записей
}
audit-none = Ничего не найдено — сбросьте фильтр.
audit-details = До и после
audit-before = До
audit-after = После

admins-you = вы
admins-active = активен
admins-disabled = отключён
admins-last-login = Последний вход
admins-role = Роль
admins-set-role = Сменить роль
admins-new-password = Новый пароль
admins-set-password = Задать пароль
admins-disable = Отключить
admins-enable = Включить
admins-delete = Удалить…
admins-delete-title = Удалить учётную запись?
admins-delete-what = Войти с ней будет нельзя, её сессии закончатся. Журнал сохранит её записи под её именем.
admins-delete-do = Да, удалить
admins-new = Новая учётная запись
admins-password-hint = Не короче 12 символов. Смена роли или пароля и отключение завершают все сессии учётной записи.
admins-create = Создать
admins-done-created = Учётная запись создана
admins-done-role = Роль изменена
admins-done-active = Учётная запись изменена
admins-done-password = Пароль изменён
admins-done-deleted = Учётная запись удалена

# Payments
nav-payments = Платежи
filter-any = любой
payments-user = Id пользователя
payments-from = С
payments-to = По (включительно)
payments-filter = Показать
payments-found = { $n ->
    [one] { $n } платёж
    [few] { $n } платежа
   *[other] { $n } платежей
}
payments-none = Платежей не найдено — сбросьте фильтр или дождитесь первой продажи.
payment-title = Платёж
payment-paid = Оплачен
payment-external = Id у провайдера
payment-reason = Причина
payment-refunds = Возвраты
payment-no-refunds = Возвратов нет.
payment-days-back = { $n ->
    [one] { $n } день списан
    [few] { $n } дня списано
   *[other] { $n } дней списано
}
payment-events = События от провайдера
payment-no-events = Событий не было.

# Refunds
refund-title = Возврат
refund-amount = Сумма возврата
refund-amount-hint = Оставьте пустым, чтобы вернуть весь остаток:
refund-submit = Вернуть…
refund-confirm-title = Вернуть этот платёж?
refund-confirm-what = Деньги вернутся через провайдера, оплаченные дни спишутся пропорционально; панель обновится.
refund-of = из
refund-days = Будет списано
refund-do = Да, вернуть
done-refund = Возврат сделан. Дни списаны, панель обновляется.

# Plans
nav-plans = Тарифы
plans-none = Тарифов пока нет — создайте первый ниже; бот предлагает активные тарифы.
plan-title = Тариф
plan-name = Название по умолчанию
plan-name-ru = Название по-русски
plan-name-en = Название по-английски
plan-description-ru = Описание по-русски
plan-description-en = Описание по-английски
plan-days = Дней
plan-price = Цена, ₽
plan-price-stars = Цена в звёздах
plan-traffic = Трафик за период, ГиБ
plan-unlimited = без ограничений
plan-sort = Порядок в боте
plan-active = Предлагается в боте
plan-on-sale = в продаже
plan-off-sale = не предлагается
plan-new = Новый тариф
plan-form-hint = Пустая цена в звёздах — не продаётся за звёзды. Пустой трафик — без ограничений. Название по умолчанию можно не заполнять, если есть название на языке.
plan-create = Создать тариф
plan-save = Сохранить
plan-deactivate = Больше не предлагать
plan-deactivate-what = Купленное у подписчиков остаётся; бот перестанет предлагать этот тариф.
plan-activate = Снова предлагать
plan-done-created = Тариф создан.
plan-done-saved = Сохранено.
plan-done-activated = Бот снова предлагает этот тариф.
plan-done-deactivated = Бот больше не предлагает этот тариф.

# Promo codes
nav-promo-codes = Промокоды
promo-title = Промокод
promo-search-label = Коды, начинающиеся с
promo-found = { $n ->
    [one] { $n } код
    [few] { $n } кода
   *[other] { $n } кодов
}
promo-none-yet = Промокодов пока нет — создайте первый ниже и поделитесь им.
promo-none-found = Нет кодов, начинающихся так.
promo-code = Код
promo-kind = Вид
promo-kind-percent = Скидка в процентах
promo-kind-fixed = Скидка в рублях
promo-kind-bonus-days = Бонусные дни
promo-value = Значение
promo-days = { $n ->
    [one] { $n } день
    [few] { $n } дня
   *[other] { $n } дней
}
promo-redemptions = Использован
promo-reserved = { $n ->
    [one] { $n } занят неоплаченным заказом
    [few] { $n } заняты неоплаченными заказами
   *[other] { $n } заняты неоплаченными заказами
}
promo-reserved-label = заняты неоплаченными заказами
promo-valid = Действует
promo-valid-from = Действует с (UTC)
promo-valid-until = Действует до (UTC)
promo-min-plan = Только для тарифов не короче
promo-any-plan = любой тариф
promo-kept-days = { $n ->
    [one] { $n } день (как сохранено)
    [few] { $n } дня (как сохранено)
   *[other] { $n } дней (как сохранено)
}
promo-max-uses = Всего использований (пусто — без ограничения)
promo-note = Заметка для админов
promo-once-per-user = Один раз на пользователя
promo-new-users-only = Только для тех, кто ещё не платил
promo-active = Можно использовать
promo-on = активен
promo-off = выключен
promo-new = Новый промокод
promo-form-hint = Значение: проценты (1–100), рубли скидки или добавляемые дни. Код можно вводить в любом регистре.
promo-create = Создать код
promo-save = Сохранить
promo-deactivate = Выключить
promo-activate = Включить
promo-redeemed-by = Кто использовал
promo-no-redemptions = Этот код ещё никто не использовал.
promo-done-created = Промокод создан.
promo-done-saved = Сохранено.
promo-done-activated = Код снова можно использовать.
promo-done-deactivated = Код больше нельзя использовать.
