"""How a staffing gap reads in Russian and English ("нужно ещё 2 сотрудника по понедельникам 10–13")."""

from __future__ import annotations

WEEKDAYS_DATIVE = {
    1: "понедельникам",
    2: "вторникам",
    3: "средам",
    4: "четвергам",
    5: "пятницам",
    6: "субботам",
    7: "воскресеньям",
}
WEEKDAYS_EN = {1: "Mondays", 2: "Tuesdays", 3: "Wednesdays", 4: "Thursdays", 5: "Fridays", 6: "Saturdays", 7: "Sundays"}
WEEKDAY_SHORT = {
    "ru": ("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def ru_plural(n: int, one: str, few: str, many: str) -> str:
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def gap_text(
    short: int, weekday: int, from_hour: int | None = None, to_hour: int | None = None, lang: str = "ru"
) -> str:
    """One gap as a sentence; hours are the run's bounds (10–13 covers 10:00 to 13:00)."""
    hours = f" {from_hour}–{to_hour}" if from_hour is not None else ""
    if lang == "ru":
        verb = "нужен" if short % 10 == 1 and short % 100 != 11 else "нужно"
        noun = ru_plural(short, "сотрудник", "сотрудника", "сотрудников")
        return f"{verb} ещё {short} {noun} по {WEEKDAYS_DATIVE[weekday]}{hours}"
    noun = "agent" if short == 1 else "agents"
    return f"{short} more {noun} needed on {WEEKDAYS_EN[weekday]}{hours}"


def forecast_text(load: float, norm_high: float, week: str, lang: str = "ru") -> str:
    """The digest's line when the forecast load per agent passes the norm."""
    if lang == "ru":
        value = f"{load:.1f}".replace(".", ",")
        return (
            f"Прогноз: к неделе {week} нагрузка вырастет до {value} обращения на сотрудника в день"
            f" (норма — не больше {norm_high:g})"
        )
    return (
        f"Forecast: by week {week} the load will reach {load:.1f} requests per agent a day"
        f" (norm: at most {norm_high:g})"
    )
