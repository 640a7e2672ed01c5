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
}


def word(text: str, lang: str) -> str:
    """``text`` in ``lang`` where the report has a word for it; else as it is."""
    if lang != "zh":
        return text
    return ZH.get(text, text)
