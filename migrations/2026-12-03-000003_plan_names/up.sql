-- Plans in the subscriber's language: a name and an optional short description per language,
-- as JSON objects keyed by the language code ({"ru": "1 месяц", "en": "1 month"}). `name` stays
-- and is the default shown when the reader's language has no name. The application checks the
-- languages and lengths (a new language needs no migration).
ALTER TABLE plans
    ADD COLUMN names        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(names) = 'object'),
    ADD COLUMN descriptions jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(descriptions) = 'object');

-- The plans the first migration seeded, still as seeded, get both languages.
UPDATE plans SET names = seeded.names
FROM (VALUES
    ('1 month',   30,  '{"ru": "1 месяц",   "en": "1 month"}'::jsonb),
    ('3 months',  90,  '{"ru": "3 месяца",  "en": "3 months"}'::jsonb),
    ('6 months',  180, '{"ru": "6 месяцев", "en": "6 months"}'::jsonb),
    ('12 months', 365, '{"ru": "12 месяцев", "en": "12 months"}'::jsonb)
) AS seeded (name, days, names)
WHERE plans.name = seeded.name AND plans.days = seeded.days AND plans.names = '{}';
