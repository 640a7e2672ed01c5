"""The shell's own messages in zh (``CONTINGENCY_LANGUAGE=zh``), in the plan's terms:
the CLI commands the plan's people use (``oncall``, ``ack``, ``incident``, ``actions``,
``security``, ``gates``, ``approve``/``reject``, ``freeze``/``thaw``) and the board's
answers, which share them.

The English text is the key; ``{fields}`` are filled after the lookup, so what a person
or the system wrote (names, ids, summaries, reasons from Prefect) stays as written.
English is the identity. Pure::

    msg("zh", "incident {run_id} acknowledged by {person}", run_id="r1", person="wang.fang")
    # "事件 r1 已由 wang.fang 确认接警"
"""

from __future__ import annotations

ZH: dict[str, str] = {
    # acknowledgement (接警)
    "incident {run_id} acknowledged by {person}": "事件 {run_id} 已由 {person} 确认接警",
    "already acknowledged by {who} at {when} UTC": "已由 {who} 于 {when} UTC 确认接警",
    "{run_id!r} is not a flow run id (a UUID)": "{run_id!r} 不是运行记录编号（UUID）",
    "{person!r} is not a person in the inventory": "{person!r} 不在清单人员中",
    "unknown run {run_id}: Prefect has no such flow run": (
        "未知运行 {run_id}：Prefect 中没有该运行记录"
    ),
    "run {run_id} is not an incident": "运行 {run_id} 不是事件",
    # reporting a problem (发现异常) and triage (初步判断)
    "say what you see (summary)": "请说明发现的异常（--summary）",
    "--plan and --target go together (--target alone is a hint)": (
        "--plan 须与 --target 同时给出（单独的 --target 仅作提示）"
    ),
    "plan {plan!r} is not a plan ({names})": "{plan!r} 不是预案（可选：{names}）",
    "target {target!r} is not in the inventory": "目标 {target!r} 不在清单中",
    "severity {level!r} is not a level ({levels})": "级别 {level!r} 不存在（可选：{levels}）",
    "incident {run_id} opened (reported by {person})": "事件 {run_id} 已立案（报告人 {person}）",
    "; tech support is paged to triage it": "；已通知技术支持团队进行初步判断",
    "incident {run_id} triaged by {person}: {what}": (
        "事件 {run_id} 已由 {person} 完成初步判断：{what}"
    ),
    "plan {plan} on {target}": "对 {target} 执行预案 {plan}",
    "by hand (no plan)": "无适用预案，转人工处置",
    "incident {run_id} is not waiting for triage (state {state})": (
        "事件 {run_id} 不在等待初步判断（状态 {state}）"
    ),
    "Prefect refused the answer: {why}": "Prefect 拒绝了该判断：{why}",
    "incident {run_id} refused the triage: its form says why": (
        "事件 {run_id} 未接受该判断：原因见其表单"
    ),
    "incident {run_id} ended ({state}) before taking the triage": (
        "事件 {run_id} 在接受判断前已结束（{state}）"
    ),
    "incident {run_id} did not take the triage within 30 s": "事件 {run_id} 在 30 秒内未接受该判断",
    # on duty (值班)
    "On duty (值班)": "值班",
    "role": "角色",
    "on duty": "值班人",
    "contact": "联系方式",
    "shift": "班次",
    "next": "下一班",
    "no roster: {members}": "未设值班表：{members}",
    " (override)": "（临时替班）",
    # follow-up actions (整改措施)
    "Follow-up actions": "整改措施",
    "id": "编号",
    "action": "措施",
    "owner": "负责人",
    "due": "截止日期",
    "state": "状态",
    "incident": "事件",
    "OVERDUE": "已逾期",
    "open": "进行中",
    "done": "已完成",
    "dropped": "已撤销",
    "no open follow-up actions": "没有进行中的整改措施",
    "no follow-up actions": "没有整改措施",
    "no follow-up action {action_id!r} (see `contingency actions`)": (
        "没有整改措施 {action_id!r}（见 `contingency actions`）"
    ),
    "{action_id} is already {state}": "{action_id} 已是{state}状态",
    "follow-up {action_id} {state}": "整改措施 {action_id}：{state}",
    # sign-off (审批) and the kill switch
    "approve": "批准",
    "reject": "驳回",
    "{decision} submitted for {run_id}; the flow checks the approver and code "
    "(see its log and report)": (
        "已提交对 {run_id} 的{decision}决定；流程将核对审批人和验证码（见其日志和报告）"
    ),
    "re-opened {run_id} as incident {new}; the command center is asked again": (
        "已将 {run_id} 重新立案为事件 {new}；将再次请应急指挥中心审批"
    ),
    "flow run": "运行记录",
    "waiting": "已等待",
    "expires (UTC)": "截止时间 (UTC)",
    " (process gone: being re-opened)": "（进程已退出：正在重新立案）",
    "{minutes} min": "{minutes} 分钟",
    "no open gates": "当前没有等待审批的事件",
    "frozen by {name}: {reason} — plans only plan and notify": (
        "已由 {name} 冻结：{reason}——预案只制定方案并通知，不执行"
    ),
    "thawed: plans act again": "已解冻：预案恢复执行",
    # security holds (安全事件)
    "Security holds": "安全锁定",
    "host": "主机",
    "since (UTC)": "开始时间 (UTC)",
    "why": "原因",
    "no host is held": "当前没有被锁定的主机",
    "--as: {person!r} is not a command-center member": "--as：{person!r} 不是应急指挥中心成员",
    "{host!r} is not held": "{host!r} 未被锁定",
    "{host!r} is not a host in the inventory": "{host!r} 不是清单中的主机",
    "{host} released by {person} (held by incident {run_id})": (
        "{host} 已由 {person} 解除锁定（锁定它的事件：{run_id}）"
    ),
    "{host}: isolation lifted (`{command}`)": "{host}：已解除隔离（`{command}`）",
    "isolation not lifted: {why}": "未能解除隔离：{why}",
    # the plan's periodic review (预案评审)
    "review of version {version} by {person} recorded; next review due {due}": (
        "已记录 {person} 对预案版本 {version} 的评审；下次评审日期 {due}"
    ),
    "review of version {version} by {person} already recorded; next review due {due}": (
        "{person} 对预案版本 {version} 的评审此前已记录；下次评审日期 {due}"
    ),
}


def msg(lang: str, text: str, **fields: object) -> str:
    """``text`` in ``lang`` (the English if there is no word for it), fields filled in."""
    template = ZH.get(text, text) if lang == "zh" else text
    return template.format(**fields)
