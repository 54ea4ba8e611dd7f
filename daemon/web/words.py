"""The page's words: Chinese by default, English when the browser prefers it; times in words.

Plain dictionaries rather than gettext catalogues: two languages, a few dozen phrases, no build
step. A phrase missing from English falls back to the Chinese one, never to a key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

LANGUAGES = ("zh", "en")

ZH: dict[str, str] = {
    "app": "chime 提醒",
    "nav.today": "接下来",
    "nav.add": "添加",
    "nav.log": "记录",
    "nav.calendars": "日历",
    "nav.status": "状态",
    "today.title": "接下来的提醒",
    "today.empty": "还没有提醒。",
    "today.paused": "已暂停",
    "today.finished": "已结束",
    "today.all": "显示全部 {count} 个提醒",
    "add.title": "添加提醒",
    "edit.title": "修改提醒",
    "field.text": "提醒我做什么",
    "field.text.hint": "例如：喝水",
    "field.at": "什么时候",
    "field.at.hint": "例如：明天早上8点、20:30、in 10 minutes",
    "field.every": "重复",
    "field.lead": "提前准备",
    "field.lead.hint": "例如：5m（默认：{lead}）",
    "field.outputs": "输出",
    "field.outputs.default": "默认（{outputs}）",
    "field.tz": "时区",
    "field.nag": "没确认就重复提醒",
    "field.nag.hint": "例如：5m（none：不重复）",
    "field.priority": "优先级",
    "field.priority.default": "默认",
    "every.none": "不重复",
    "every.daily": "每天",
    "every.weekdays": "周一到周五",
    "every.workdays": "法定工作日",
    "every.weekends": "周末",
    "every.weekly": "每周",
    "every.monthly": "每月",
    "every.yearly": "每年",
    "every.custom": "自定义规则",
    "resolved": "将在 {when}",
    "resolved.none": "这个时间以后不会再有提醒",
    "button.add": "添加",
    "button.save": "保存",
    "button.preview": "预览",
    "button.edit": "修改",
    "button.pause": "暂停",
    "button.resume": "继续",
    "button.remove": "删除",
    "button.cancel": "取消",
    "button.done": "完成",
    "button.snooze": "稍后 {delay}",
    "button.upload": "上传",
    "button.subscribe": "订阅",
    "button.unsubscribe": "取消订阅",
    "button.login": "登录",
    "confirm.remove": "确定删除“{task}”吗？已发送的记录会保留。",
    "confirm.unsubscribe": "确定取消订阅 {url} 吗？它的 {count} 个提醒会被删除。",
    "preview.title": "现在的提醒文字",
    "preview.by": "由 {generator} 写成",
    "log.title": "提醒记录",
    "log.empty": "还没有记录。",
    "log.acknowledged": "已确认 {when}",
    "log.snoozed": "已推迟",
    "status.delivered": "已送达",
    "status.late": "迟到送达",
    "status.missed": "错过",
    "status.failed": "失败",
    "status.pending": "等待中",
    "status.prepared": "已准备",
    "status.delivering": "送达中",
    "status.unacknowledged": "未确认",
    "status.cancelled": "未发送",
    "cal.title": "日历",
    "cal.upload": "导入 .ics 文件",
    "cal.upload.limit": "最大 {kb} KB",
    "cal.imported": "已导入：新增 {added}，更新 {updated}，删除 {removed}，未变 {unchanged}",
    "cal.subscriptions": "订阅",
    "cal.subscriptions.empty": "还没有订阅。",
    "cal.url": "日历网址（http、https 或 webcal）",
    "cal.every": "刷新间隔",
    "cal.events": "{count} 个提醒",
    "cal.never": "还没获取",
    "cal.checked": "上次检查 {when}",
    "cal.error": "错误：{error}",
    "st.title": "状态",
    "st.daemon": "守护进程",
    "st.running": "运行中（{age}前的心跳）",
    "st.stopped": "没有运行",
    "st.stopped.since": "没有运行（最后心跳 {when}）",
    "st.next": "接下来",
    "st.weather": "天气缓存",
    "st.weather.age": "{age}前获取",
    "st.weather.none": "没有缓存的天气",
    "st.model": "角色模型",
    "st.model.ok": "可用",
    "st.guard": "温度与内存保护",
    "st.guard.ok": "可以运行",
    "st.guard.refusing": "拒绝：{reason}",
    "st.disk": "存储",
    "st.disk.value": "数据库 {db}，剩余 {free}",
    "login.title": "登录",
    "login.token": "令牌（chime web token）",
    "login.wrong": "令牌不对。",
    "error.title": "出错了",
    "rule.custom": "规则 {rule}",
    "rule.once": "一次",
    "outputs.default": "默认输出",
    "day.today": "今天",
    "day.tomorrow": "明天",
    "day.after": "后天",
    "day.yesterday": "昨天",
    "day.date": "{month}月{day}日 周{weekday}",
    "in.minutes": "还有 {n} 分钟",
    "in.hours": "还有 {n} 小时",
    "in.days": "还有 {n} 天",
    "in.now": "马上",
    "ago.minutes": "{n} 分钟前",
    "ago.hours": "{n} 小时前",
    "ago.days": "{n} 天前",
    "age.seconds": "{n} 秒",
    "age.minutes": "{n} 分钟",
    "age.hours": "{n} 小时",
    "age.days": "{n} 天",
    "sep": "，",
    "more": "更多选项",
    "ago.now": "刚刚",
}

EN: dict[str, str] = {
    "app": "chime reminders",
    "nav.today": "Next",
    "nav.add": "Add",
    "nav.log": "Log",
    "nav.calendars": "Calendars",
    "nav.status": "Status",
    "today.title": "Coming up",
    "today.empty": "No reminders yet.",
    "today.paused": "paused",
    "today.finished": "finished",
    "today.all": "Show all {count} reminders",
    "add.title": "Add a reminder",
    "edit.title": "Edit reminder",
    "field.text": "Remind me to",
    "field.text.hint": "e.g. drink water",
    "field.at": "When",
    "field.at.hint": "e.g. tomorrow 8:00, 20:30, 明天早上8点",
    "field.every": "Repeat",
    "field.lead": "Prepare ahead",
    "field.lead.hint": "e.g. 5m (default: {lead})",
    "field.outputs": "Outputs",
    "field.outputs.default": "default ({outputs})",
    "field.tz": "Time zone",
    "field.nag": "Repeat until acknowledged",
    "field.nag.hint": "e.g. 5m (none: never)",
    "field.priority": "Priority",
    "field.priority.default": "default",
    "every.none": "once",
    "every.daily": "every day",
    "every.weekdays": "weekdays",
    "every.workdays": "official workdays",
    "every.weekends": "weekends",
    "every.weekly": "weekly",
    "every.monthly": "monthly",
    "every.yearly": "yearly",
    "every.custom": "custom rule",
    "resolved": "at {when}",
    "resolved.none": "no reminder after this time",
    "button.add": "Add",
    "button.save": "Save",
    "button.preview": "Preview",
    "button.edit": "Edit",
    "button.pause": "Pause",
    "button.resume": "Resume",
    "button.remove": "Remove",
    "button.cancel": "Cancel",
    "button.done": "Done",
    "button.snooze": "Snooze {delay}",
    "button.upload": "Upload",
    "button.subscribe": "Subscribe",
    "button.unsubscribe": "Unsubscribe",
    "button.login": "Log in",
    "confirm.remove": "Remove “{task}”? Delivered history stays in the log.",
    "confirm.unsubscribe": "Unsubscribe from {url}? Its {count} reminder(s) are removed.",
    "preview.title": "The text it would have now",
    "preview.by": "written by {generator}",
    "log.title": "Log",
    "log.empty": "Nothing delivered yet.",
    "log.acknowledged": "acknowledged {when}",
    "log.snoozed": "snoozed",
    "status.delivered": "delivered",
    "status.late": "delivered late",
    "status.missed": "missed",
    "status.failed": "failed",
    "status.pending": "pending",
    "status.prepared": "prepared",
    "status.delivering": "delivering",
    "status.unacknowledged": "unacknowledged",
    "status.cancelled": "not sent",
    "cal.title": "Calendars",
    "cal.upload": "Import an .ics file",
    "cal.upload.limit": "at most {kb} KB",
    "cal.imported": "Imported: {added} added, {updated} updated, {removed} removed, "
                    "{unchanged} unchanged",
    "cal.subscriptions": "Subscriptions",
    "cal.subscriptions.empty": "No subscriptions yet.",
    "cal.url": "Calendar URL (http, https or webcal)",
    "cal.every": "Refresh every",
    "cal.events": "{count} reminder(s)",
    "cal.never": "never fetched",
    "cal.checked": "checked {when}",
    "cal.error": "error: {error}",
    "st.title": "Status",
    "st.daemon": "Daemon",
    "st.running": "running (heartbeat {age} ago)",
    "st.stopped": "not running",
    "st.stopped.since": "not running (last heartbeat {when})",
    "st.next": "Next",
    "st.weather": "Weather cache",
    "st.weather.age": "fetched {age} ago",
    "st.weather.none": "no forecast cached",
    "st.model": "Character model",
    "st.model.ok": "usable",
    "st.guard": "Temperature and memory guard",
    "st.guard.ok": "would run now",
    "st.guard.refusing": "refusing: {reason}",
    "st.disk": "Storage",
    "st.disk.value": "database {db}, {free} free",
    "login.title": "Log in",
    "login.token": "Token (chime web token)",
    "login.wrong": "That token is not right.",
    "error.title": "Something went wrong",
    "rule.custom": "rule {rule}",
    "rule.once": "once",
    "outputs.default": "default outputs",
    "day.today": "today",
    "day.tomorrow": "tomorrow",
    "day.after": "the day after tomorrow",
    "day.yesterday": "yesterday",
    "day.date": "{weekday_en} {day} {month_en}",
    "in.minutes": "in {n} min",
    "in.hours": "in {n} h",
    "in.days": "in {n} days",
    "in.now": "now",
    "ago.minutes": "{n} min ago",
    "ago.hours": "{n} h ago",
    "ago.days": "{n} days ago",
    "age.seconds": "{n} s",
    "age.minutes": "{n} min",
    "age.hours": "{n} h",
    "age.days": "{n} days",
    "sep": ", ",
    "more": "More options",
    "ago.now": "just now",
}

_CN_WEEKDAYS = "一二三四五六日"
_EN_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PRESETS = ("daily", "weekdays", "weekends", "weekly", "monthly", "yearly")


def pick_language(accept_language: str) -> str:
    """``en`` when the browser ranks English above Chinese, else ``zh``."""
    best, best_q = "zh", -1.0
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        if lang not in LANGUAGES:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q and q > 0:
            best, best_q = lang, q
    return best


class Words:
    """The phrases of one language: ``words("key", n=3)``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "zh"
        self.table = EN if self.lang == "en" else ZH

    def __call__(self, key: str, **values: object) -> str:
        text = self.table.get(key) or ZH[key]
        return text.format(**values) if values else text

    def day(self, at: datetime, now: datetime) -> str:
        """今天 / 明天 / 后天 / 昨天, else 12月3日 周四."""
        days = (at.date() - now.astimezone(at.tzinfo).date()).days
        named = {0: "day.today", 1: "day.tomorrow", 2: "day.after", -1: "day.yesterday"}
        if days in named:
            return self(named[days])
        return self("day.date", month=at.month, day=at.day, weekday=_CN_WEEKDAYS[at.weekday()],
                    month_en=_EN_MONTHS[at.month - 1], weekday_en=_EN_WEEKDAYS[at.weekday()])

    def relative(self, at: datetime, now: datetime) -> str:
        """还有 2 小时 / 5 分钟前: the distance rounded to its largest unit."""
        seconds = (at - now).total_seconds()
        prefix = "in" if seconds >= 0 else "ago"
        span = abs(seconds)
        if span < 60:
            return self(f"{prefix}.now")
        if span < 3600:
            return self(f"{prefix}.minutes", n=max(1, round(span / 60)))
        if span < 86400 * 2:
            return self(f"{prefix}.hours", n=round(span / 3600))
        return self(f"{prefix}.days", n=round(span / 86400))

    def when(self, at: datetime, now: datetime) -> str:
        """今天 20:30，还有 2 小时."""
        return f"{self.day(at, now)} {at:%H:%M}{self('sep')}{self.relative(at, now)}"

    def age(self, delta: timedelta) -> str:
        """How long ago, without the word "ago": 12 秒, 3 分钟, 2 小时."""
        seconds = max(0, int(delta.total_seconds()))
        if seconds < 120:
            return self("age.seconds", n=seconds)
        if seconds < 7200:
            return self("age.minutes", n=seconds // 60)
        if seconds < 86400 * 2:
            return self("age.hours", n=seconds // 3600)
        return self("age.days", n=seconds // 86400)

    def rule(self, rrule: str | None, day_filter: str | None = None) -> str:
        """每天 / weekdays for the presets, 法定工作日 for workdays, else the RRULE itself."""
        if not rrule:
            return self("rule.once")
        if day_filter:
            return self(f"every.{day_filter}")
        from daemon.timeparse import SHORTHANDS

        for preset in _PRESETS:
            if SHORTHANDS[preset] == rrule:
                return self(f"every.{preset}")
        return self("rule.custom", rule=rrule)

    def status(self, status: str) -> str:
        key = f"status.{status}"
        return self(key) if key in ZH else status


def preset_of(rrule: str | None, day_filter: str | None = None) -> str:
    """The select option for a rule: a preset name, ``none`` or ``custom``."""
    if not rrule:
        return "none"
    if day_filter:
        return day_filter if day_filter in PRESETS else "custom"
    from daemon.timeparse import SHORTHANDS

    return next((p for p in _PRESETS if SHORTHANDS[p] == rrule), "custom")


# The repeat menu: the RRULE shorthands, and the official workdays (调休 included).
PRESETS = ("daily", "workdays", *_PRESETS[1:])
