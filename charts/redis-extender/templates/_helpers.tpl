{{/* The extender's name: the release name, unless it lacks the chart name (then both). */}}
{{- define "redis-extender.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "redis-extender.cacheName" -}}
{{- printf "%s-cache" (include "redis-extender.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: name + component select; part-of groups. $ = root, component = extender|cache|scheduler. */}}
{{- define "redis-extender.labels" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "redis-extender.componentName" (list $root $component) }}
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/part-of: {{ include "redis-extender.fullname" $root }}
{{- end -}}

{{- define "redis-extender.selector" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "redis-extender.componentName" (list $root $component) }}
app.kubernetes.io/component: {{ $component }}
{{- end -}}

{{- define "redis-extender.componentName" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- if eq $component "extender" -}}{{ include "redis-extender.fullname" $root }}
{{- else if eq $component "cache" -}}{{ include "redis-extender.cacheName" $root }}
{{- else -}}{{ $root.Values.scheduler.name }}
{{- end -}}
{{- end -}}

{{- define "redis-extender.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The extender's in-cluster name, the name its serving certificate must carry. */}}
{{- define "redis-extender.serviceHost" -}}
{{- printf "%s.%s.svc" (include "redis-extender.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* REDIS_URL: the single cache's Service, or the Sentinels of the sentinel cache. */}}
{{- define "redis-extender.redisUrl" -}}
{{- $cache := include "redis-extender.cacheName" . -}}
{{- if eq .Values.cache.mode "sentinel" -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.cache.sentinel.replicas) -}}
{{- $hosts = append $hosts (printf "%s-%d.%s-headless.%s.svc:26379" $cache $i $cache $.Release.Namespace) -}}
{{- end -}}
{{- printf "redis+sentinel://%s/%s/0" (join "," $hosts) .Values.cache.sentinel.masterName -}}
{{- else -}}
{{- printf "redis://%s:6379/0" $cache -}}
{{- end -}}
{{- end -}}

{{/* The scheduler configuration (scheduler-config/redis-scheduler.yaml with this release's
names; the default render is that file verbatim). */}}
{{- define "redis-extender.schedulerConfig" -}}
{{- $mtls := .Values.tls.clientAuth.enabled -}}
# A second kube-scheduler, named {{ .Values.scheduler.name }}, that consults redis-extender for every pod
# with `schedulerName: {{ .Values.scheduler.name }}`. The cluster's default scheduler is left untouched.
# For Kubernetes 1.25+ (kubescheduler.config.k8s.io/v1). Every field is explained in
# scheduler-config/README.md; deploy/scheduler-configmap.yaml carries this exact text.
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
# No clientConnection block: without clientConnection.kubeconfig, kube-scheduler uses the
# in-cluster config (its ServiceAccount token, deploy/scheduler-rbac.yaml).
leaderElection:
  leaderElect: true
  resourceLock: leases
  # Not the default "kube-scheduler": with the default name both schedulers would compete
  # for one lease and only one of the two would ever run.
  resourceName: {{ .Values.scheduler.name }}
  resourceNamespace: {{ .Release.Namespace }}
# Score every feasible node (the default samples 50 % or less above 100 nodes), so the
# extender sees every candidate domain.
percentageOfNodesToScore: 100
profiles:
- schedulerName: {{ .Values.scheduler.name }}
# extenders apply to every profile of this scheduler; it has only the one above.
extenders:
- urlPrefix: https://{{ include "redis-extender.serviceHost" . }}:{{ .Values.service.port }}
  filterVerb: filter
  prioritizeVerb: prioritize
  # Preemption: the scheduler's candidate nodes and victims go to the extender, which keeps
  # only nodes whose victims spare every shard (POST /preempt). Called by kube-scheduler
  # 1.21+ (v1.20.x before the fix of kubernetes#102971 skips extenders when preempting).
  preemptVerb: preempt
  bindVerb: bind
  # Score (0..10) x weight x 10: 12 gives up to 1200, as much as the default score plugins
  # together, so the spread score leads without erasing resource fit.
  weight: {{ .Values.scheduler.weight }}
  # Send node names only, not full Node objects: the extender keeps nodes in its cache.
  nodeCacheCapable: true
  # The scheduling loop waits for this call; the extender answers in milliseconds, so 2 s
  # only bounds the stall of a hung extender (default 5 s).
  httpTimeout: {{ .Values.scheduler.httpTimeout }}
  enableHTTPS: true
  tlsConfig:
    # CA that signed the extender's serving certificate (ca.crt of the {{ .Values.tls.serverSecret }}
    # Secret, mounted by deploy/scheduler-deployment.yaml). The certificate must name
    # {{ include "redis-extender.serviceHost" . }}: serverName defaults to the urlPrefix host.
    caFile: /etc/redis-extender-ca/ca.crt
{{- if $mtls }}
    # mTLS: the extender (serve --client-ca-file) answers only clients with a certificate
    # signed by the client CA (a CA of its own, not the serving certificate's): this one, of
    # the Secret {{ .Values.tls.clientAuth.clientSecret }} (deploy/scheduler-deployment.yaml mounts it).
    certFile: /etc/redis-scheduler-client/tls.crt
    keyFile: /etc/redis-scheduler-client/tls.key
{{- end }}
  # false: no Redis pod is placed without the extender's check (spread over availability).
  ignorable: false
  # managedResources left empty: every pod of this profile goes to the extender.
{{ end -}}

{{/* The environment of a sentinel-mode cache pod's containers (files/cache-start.sh reads it). */}}
{{- define "redis-extender.cacheEnv" -}}
{{- $cache := include "redis-extender.cacheName" . -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: SET_NAME
  value: {{ $cache }}
- name: HEADLESS
  value: {{ $cache }}-headless.{{ .Release.Namespace }}.svc
- name: REPLICAS
  value: {{ .Values.cache.sentinel.replicas | quote }}
- name: MASTER_NAME
  value: {{ .Values.cache.sentinel.masterName | quote }}
- name: QUORUM
  value: {{ .Values.cache.sentinel.quorum | quote }}
- name: DOWN_AFTER_MS
  value: {{ .Values.cache.sentinel.downAfterMilliseconds | quote }}
- name: FAILOVER_TIMEOUT_MS
  value: {{ .Values.cache.sentinel.failoverTimeout | quote }}
# Seconds a restarted master waits for the Sentinels to promote another.
- name: FAILOVER_WAIT
  value: {{ div (add .Values.cache.sentinel.downAfterMilliseconds .Values.cache.sentinel.failoverTimeout) 1000 | quote }}
{{- end -}}
