"""Words and numbers for people: the UI's messages and KPI labels in Russian and English
(``i18n``), and KPI values formatted as the dashboard, the exports and the pushes show them
(``present``)."""
