# Оповещения администраторов (Telegram — ADMIN_TELEGRAM_IDS, почта — ADMIN_EMAILS), русский.
# alert-<kind> — оповещение при возникновении; alert-<kind>-resolved — о его окончании. Первая строка —
# и тема письма. Telegram HTML: только <b>, <i>, <code>. Переменные подставляет программа.

alert-none = —
alert-user = #{ $id } (Telegram { $telegram_id })

alert-payment_flagged = 🔴 <b>Платёж под вопросом: { $anomaly }</b>
    Заказ #{ $order }, пользователь { $user }, { $amount } через { $provider }.
    { $detail }
alert-payment_flagged-resolved = ✅ <b>Платёж проверен</b>
    Заказ #{ $order } ({ $anomaly }), проверил { $by }.
alert-anomaly-promo_overuse = промокод сверх лимита
alert-anomaly-paid_after_expiry = оплата после истечения заказа
alert-anomaly-amount_mismatch = не та сумма или валюта
alert-anomaly-paid_closed_order = оплачен уже закрытый заказ
alert-anomaly-refund_exceeds_payment = возврат больше платежа
alert-anomaly-charge_without_order = списание без заказа

alert-refund_made = ↩️ <b>Возврат { $amount }</b>
    Заказ #{ $order } через { $provider }, пользователь { $user }. { $origin }
alert-refund-by-shop = Сделал { $actor }.
alert-refund-by-request = Запрошен через магазин, подтверждён { $provider }.
alert-refund-by-provider = Сделан в кабинете { $provider } (не через магазин).

alert-job_dead = ⚠️ <b>{ $count ->
        [one] Задача { $kind } остановлена
       *[other] Остановлено задач { $kind }: { $count }
    }</b>
    Последняя: задача #{ $job }, пользователь { $user }.
    Ошибка: { $error }

alert-panel_down = 🔴 <b>Панель недоступна</b> с { $since }
    { $error }
    Выдача доступа ждёт, пока панель не вернётся.
alert-panel_down-resolved = ✅ <b>Панель снова доступна</b> (была недоступна { $minutes } мин).

alert-sync_failing = ⚠️ <b>Синхронизация { $sync } с панелью дважды подряд не удалась</b>
    { $error }
alert-sync_failing-resolved = ✅ <b>Синхронизация { $sync } с панелью снова работает</b>

alert-backup_failed = 🔴 <b>Резервная копия не создана</b>
    { $error }
alert-backup_failed-resolved = ✅ <b>Резервные копии снова создаются</b>

alert-webhook_probing = ⚠️ <b>Поддельных платёжных вебхуков за 5 минут: { $failures }</b>
    Порог — { $threshold }; больше всего с адреса { $address }. Похоже, вебхуки кто-то прощупывает.
alert-webhook_probing-resolved = ✅ <b>Поддельных платёжных вебхуков нет уже 5 минут</b>

alert-paid_unprovisioned = 🔴 <b>{ $users ->
        [one] У оплатившего пользователя нет
       *[other] У оплативших пользователей ({ $users }) нет
    } доступа на панели</b> дольше 10 минут
    Дольше всех: пользователь { $user }. Магазин продолжает выдавать доступ; проверьте панель.
alert-paid_unprovisioned-resolved = ✅ <b>У всех оплативших снова есть доступ на панели</b>

alert-sale = 💰 <b>Новая продажа: { $plan }</b>
    { $amount } через { $provider }, пользователь { $user }.

alert-digest = 📊 <b>Сводка за { $day }</b>
    Продаж: { $sales }
    Выручка: { $revenue }
    Новых пользователей: { $new_users }
    Начато пробных периодов: { $trials }
    Пробный → оплата: { $conversions }
    Продлений: { $renewals }
    Возвратов: { $refunds } { $refunded }
    Истекает завтра: { $expiring }

alert-button-user = 👤 Открыть пользователя
alert-button-retry = 🔁 Повторить задачу
alert-button-reviewed = ✔️ Проверено

# Команда /alerts (только для администраторов).
alerts-menu = <b>Оповещения</b>
    Сейчас активны: { $firing }
    { $list }
    Отключённые виды всё равно записываются (GET /api/v1/alerts). Нажмите на вид, чтобы отключить или включить его.
alerts-firing-line = • { $title } (с { $since })
alerts-more = … и ещё { $count }: GET /api/v1/alerts?state=firing
alerts-kind-on = 🔔 { $kind }
alerts-kind-muted = 🔕 { $kind }
alerts-reviewed = ✅ Оповещение #{ $alert }: платёж отмечен как проверенный.
alerts-not-flagged = Оповещение #{ $alert } — не платёж, ждущий проверки (уже проверен?).
alerts-retried = 🔁 Задача #{ $job } снова в очереди.
alerts-retry-refused = Задачу #{ $job } нельзя повторить: { $reason }

alerts-kind-payment_flagged = Платежи под вопросом
alerts-kind-refund_made = Возвраты
alerts-kind-job_dead = Остановленные задачи
alerts-kind-panel_down = Панель недоступна
alerts-kind-sync_failing = Сбои синхронизации
alerts-kind-backup_failed = Сбои резервного копирования
alerts-kind-webhook_probing = Поддельные вебхуки
alerts-kind-paid_unprovisioned = Оплачено, но нет на панели
alerts-kind-sale = Продажи
alerts-kind-digest = Ежедневная сводка
