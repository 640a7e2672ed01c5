"""The report's own words in zh (``CONTINGENCY_LANGUAGE=zh``), in the plan's terms.

Headings, table headers, summary keys, timeline event kinds and outcomes are
translated; what the system or a person wrote (messages, commands, labels, names) stays
as written. English is the identity. Pure::

    word("Timeline", "zh")  # "事件时间线"
"""

from __future__ import annotations

ZH: dict[str, str] = {
    # headings
    "Incident": "事件报告",
    "Timeline": "事件时间线",
    "Commands": "执行的命令",
    "Plan": "处置方案",
    "Approval": "指挥中心审批",
    "Notifications": "通知记录",
    "Related alerts": "相关告警",
    "Acknowledgement and escalation": "接警与升级",
    "Triage": "初步判断",
    "No command was run.": "未执行任何命令。",
    # table headers
    "time (UTC)": "时间 (UTC)",
    "event": "事件",
    "detail": "详情",
    "host": "主机",
    "command": "命令",
    "outcome": "结果",
    "exit": "退出码",
    "duration (s)": "耗时 (秒)",
    "output (tail)": "输出 (末行)",
    # summary keys
    "severity": "严重级别",
    "alert": "告警",
    "labels": "标签",
    "routing": "预案匹配",
    "related alerts": "相关告警数",
    "flow run": "运行记录",
    "reported by": "报告人",
    "time to acknowledge": "接警用时",
    "time to approve": "审批用时",
    "time to recover": "恢复用时",
    # timeline event kinds
    "alert received": "收到告警",
    "routed": "匹配预案",
    "unroutable": "无匹配预案",
    "reported": "人工报告",
    "triaged": "初步判断",
    "triage expired": "初步判断超时",
    "triage cleared": "初步判断取消",
    "planned": "制定方案",
    "replanned": "调整方案",
    "activation": "启动应急预案",
    "gate opened": "提交审批",
    "gate closed": "审批结束",
    "rails": "安全护栏",
    "probe": "探测",
    "step": "步骤",
    "verified": "验证恢复",
    "rolled back": "已回滚",
    "restore": "数据恢复",
    "restore point": "恢复点",
    "restore points": "恢复点",
    "escalated": "已升级",
    "escalation": "升级",
    # outcomes
    "recovered": "已恢复",
    "restored": "已恢复数据",
    "failed_over": "已切换",
    "failed_back": "已回切",
    "runbook_completed": "处置手册已完成",
    "healthy": "运行正常",
    "dry_run": "演练 (未变更)",
    "rejected": "审批驳回",
    "not_approved": "未获审批",
    "joined": "并入已有事件",
    "interrupted": "被中断",
    "frozen": "已冻结",
    "failed": "失败",
    "crashed": "异常退出",
    "held": "安全锁定中（暂停自动处置）",
    "contained": "已取证并隔离",
    "hold": "安全锁定",
    "Evidence": "取证记录",
    "Security hold": "安全锁定",
    # the incident board (contingency/intake/board.py)
    "Incident board": "应急指挥看板",
    "refreshes every 30 s": "每 30 秒刷新",
    "No open incidents.": "当前没有未结事件。",
    "incident": "事件",
    "state": "状态",
    "since": "已持续",
    "acknowledged": "接警人",
    "owner": "接管人",
    "run": "运行记录",
    "sign-off waiting": "等待审批",
    "triage waiting": "等待初步判断",
    "take over (接管)": "接管",
    "close with summary (总结)": "总结并关闭",
    "acknowledge (接警)": "确认接警",
    "what you do now": "您现在采取的措施",
    "the command center's summary": "应急指挥中心总结",
    "your name": "您的姓名",
    "Report a problem (发现异常)": "报告异常（发现异常）",
    "what you see": "您发现的异常",
    "service or host (optional)": "服务或主机（可选）",
    "severity (optional)": "级别（可选）",
    "report": "报告",
    "On duty (值班)": "值班",
    "no rosters": "未设值班表",
    "until": "至",
    "Overdue follow-up actions": "逾期整改措施",
    "none": "无",
    "due": "截止",
    "Acknowledge an incident (接警)": "确认接警",
    "Already acknowledged by": "已确认接警：",
    "the board": "返回看板",
    "target": "目标",
}


def word(text: str, lang: str) -> str:
    """``text`` in ``lang`` where the report has a word for it; else as it is."""
    if lang != "zh":
        return text
    return ZH.get(text, text)
