"""The extender wire protocol <-> the model. Pure: bytes in, objects out, bytes back.

Upstream types: k8s.io/kube-scheduler/extender/v1/types.go (ExtenderArgs, ExtenderFilterResult,
HostPriorityList, ExtenderBindingArgs, ExtenderPreemptionArgs/Result with Victims and
MetaVictims). The Go structs have no json tags, so top-level keys
are capitalized field names; Go decodes case-insensitively, so we accept any case and always
send the capitalized form. Lists in replies are never null.
"""
from extender.protocol.errors import MAX_CANDIDATES, MAX_LABEL, MAX_LABEL_KEY, MAX_NAME, MAX_UID, ProtocolError, loads
from extender.protocol.objects import node_from_object, parse_pod, pod_requests
from extender.protocol.preemption import PreemptionArgs, parse_preemption_args, preemption_reply
from extender.protocol.verbs import (BindingArgs, CandidateList, ExtenderArgs, NamesMemo, NodeMemo, bind_reply,
                                     filter_reply, parse_binding, parse_extender_args, prioritize_reply)

__all__ = ["MAX_CANDIDATES", "MAX_LABEL", "MAX_LABEL_KEY", "MAX_NAME", "MAX_UID", "BindingArgs", "CandidateList",
           "ExtenderArgs", "NamesMemo", "NodeMemo", "PreemptionArgs", "ProtocolError", "bind_reply", "filter_reply",
           "loads", "node_from_object", "parse_binding", "parse_extender_args", "parse_pod", "parse_preemption_args",
           "pod_requests", "preemption_reply", "prioritize_reply"]
