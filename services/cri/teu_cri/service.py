"""gRPC adapters: the CRI's RuntimeService and ImageService over pods.py, containers.py, images.py.

The RPCs not built yet answer UNIMPLEMENTED, each saying so: metrics, CheckpointContainer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from teu_api import VERSION
from teu_api.errors import InvalidArgument, TeuError, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.k8s.cri.v1 import api_pb2_grpc as cri_grpc
from teu_common.frontdoor import Gateway, call
from teu_common.rpctypes import Ctx
from teu_cri.containers import Containers
from teu_cri.events import container_events
from teu_cri.images import Images
from teu_cri.pods import Pods
from teu_cri.stats import Stats
from teu_cri.streaming import StreamingServer

#: The CRI version this service speaks.
CRI_VERSION = "v1"


class RuntimeServicer(cri_grpc.RuntimeServiceServicer):
    """runtime.v1.RuntimeService."""

    def __init__(self, gateway: Gateway, pods: Pods, containers: Containers, streaming: StreamingServer) -> None:
        self.g, self.pods, self.containers, self.streaming = gateway, pods, containers, streaming
        self.stats = Stats(gateway, pods, containers)

    async def Version(self, request: cri.VersionRequest, context: Ctx) -> cri.VersionResponse:
        return cri.VersionResponse(version="0.1.0", runtime_name="teu", runtime_version=VERSION, runtime_api_version=CRI_VERSION)

    async def Status(self, request: cri.StatusRequest, context: Ctx) -> cri.StatusResponse:
        try:
            await call(self.g.system.Info(gw.InfoRequest()))
            ready, reason, message = True, "", ""
        except TeuError as exc:
            ready, reason, message = False, "EngineNotAnswering", exc.message
        conditions = [
            cri.RuntimeCondition(type="RuntimeReady", status=ready, reason=reason, message=message),
            cri.RuntimeCondition(type="NetworkReady", status=ready, reason=reason, message=message),
        ]
        return cri.StatusResponse(status=cri.RuntimeStatus(conditions=conditions))

    async def UpdateRuntimeConfig(self, request: cri.UpdateRuntimeConfigRequest, context: Ctx) -> cri.UpdateRuntimeConfigResponse:
        # The pod CIDR steers CNI plugins; pods get their addresses from Teu's own networks instead.
        return cri.UpdateRuntimeConfigResponse()

    async def RunPodSandbox(self, request: cri.RunPodSandboxRequest, context: Ctx) -> cri.RunPodSandboxResponse:
        return cri.RunPodSandboxResponse(pod_sandbox_id=await self.pods.run(request.config, request.runtime_handler))

    async def StopPodSandbox(self, request: cri.StopPodSandboxRequest, context: Ctx) -> cri.StopPodSandboxResponse:
        await self.pods.stop(request.pod_sandbox_id)
        return cri.StopPodSandboxResponse()

    async def RemovePodSandbox(self, request: cri.RemovePodSandboxRequest, context: Ctx) -> cri.RemovePodSandboxResponse:
        await self.pods.remove(request.pod_sandbox_id)
        return cri.RemovePodSandboxResponse()

    async def PodSandboxStatus(self, request: cri.PodSandboxStatusRequest, context: Ctx) -> cri.PodSandboxStatusResponse:
        return cri.PodSandboxStatusResponse(status=await self.pods.status(request.pod_sandbox_id))

    async def ListPodSandbox(self, request: cri.ListPodSandboxRequest, context: Ctx) -> cri.ListPodSandboxResponse:
        return cri.ListPodSandboxResponse(items=await self.pods.select(request.filter))

    async def CreateContainer(self, request: cri.CreateContainerRequest, context: Ctx) -> cri.CreateContainerResponse:
        return cri.CreateContainerResponse(container_id=await self.containers.create(request.pod_sandbox_id, request.config))

    async def StartContainer(self, request: cri.StartContainerRequest, context: Ctx) -> cri.StartContainerResponse:
        await self.containers.start(request.container_id)
        return cri.StartContainerResponse()

    async def StopContainer(self, request: cri.StopContainerRequest, context: Ctx) -> cri.StopContainerResponse:
        await self.containers.stop(request.container_id, int(request.timeout))
        return cri.StopContainerResponse()

    async def RemoveContainer(self, request: cri.RemoveContainerRequest, context: Ctx) -> cri.RemoveContainerResponse:
        await self.containers.remove(request.container_id)
        return cri.RemoveContainerResponse()

    async def ListContainers(self, request: cri.ListContainersRequest, context: Ctx) -> cri.ListContainersResponse:
        return cri.ListContainersResponse(containers=await self.containers.select(request.filter))

    async def ContainerStatus(self, request: cri.ContainerStatusRequest, context: Ctx) -> cri.ContainerStatusResponse:
        return cri.ContainerStatusResponse(status=await self.containers.status(request.container_id))

    async def ExecSync(self, request: cri.ExecSyncRequest, context: Ctx) -> cri.ExecSyncResponse:
        return await self.containers.exec_sync(request.container_id, list(request.cmd), int(request.timeout))

    async def Exec(self, request: cri.ExecRequest, context: Ctx) -> cri.ExecResponse:
        if not request.cmd:
            raise InvalidArgument("a command is required")
        _check_streams(request.stdin, request.stdout, request.stderr, request.tty)
        cid = await self.containers.running(request.container_id)
        return cri.ExecResponse(url=self.streaming.url("exec", request, cid))

    async def Attach(self, request: cri.AttachRequest, context: Ctx) -> cri.AttachResponse:
        _check_streams(request.stdin, request.stdout, request.stderr, request.tty)
        cid = await self.containers.running(request.container_id)
        return cri.AttachResponse(url=self.streaming.url("attach", request, cid))

    async def PortForward(self, request: cri.PortForwardRequest, context: Ctx) -> cri.PortForwardResponse:
        sandbox = await self.pods.details(request.pod_sandbox_id)
        return cri.PortForwardResponse(url=self.streaming.url("portforward", request, sandbox.summary.id))

    async def ContainerStats(self, request: cri.ContainerStatsRequest, context: Ctx) -> cri.ContainerStatsResponse:
        return cri.ContainerStatsResponse(stats=await self.stats.container(request.container_id))

    async def ListContainerStats(self, request: cri.ListContainerStatsRequest, context: Ctx) -> cri.ListContainerStatsResponse:
        return cri.ListContainerStatsResponse(stats=await self.stats.containers_matching(request.filter))

    async def PodSandboxStats(self, request: cri.PodSandboxStatsRequest, context: Ctx) -> cri.PodSandboxStatsResponse:
        return cri.PodSandboxStatsResponse(stats=await self.stats.pod(request.pod_sandbox_id))

    async def ListPodSandboxStats(self, request: cri.ListPodSandboxStatsRequest, context: Ctx) -> cri.ListPodSandboxStatsResponse:
        return cri.ListPodSandboxStatsResponse(stats=await self.stats.pods_matching(request.filter))

    async def ListMetricDescriptors(
        self, request: cri.ListMetricDescriptorsRequest, context: Ctx
    ) -> cri.ListMetricDescriptorsResponse:
        raise Unimplemented("CRI metrics are not served; Teu's own are on its Prometheus endpoints")

    async def ListPodSandboxMetrics(
        self, request: cri.ListPodSandboxMetricsRequest, context: Ctx
    ) -> cri.ListPodSandboxMetricsResponse:
        raise Unimplemented("CRI metrics are not served; Teu's own are on its Prometheus endpoints")

    async def UpdateContainerResources(
        self, request: cri.UpdateContainerResourcesRequest, context: Ctx
    ) -> cri.UpdateContainerResourcesResponse:
        await self.containers.update_resources(request.container_id, request.linux)
        return cri.UpdateContainerResourcesResponse()

    async def ReopenContainerLog(self, request: cri.ReopenContainerLogRequest, context: Ctx) -> cri.ReopenContainerLogResponse:
        await self.containers.reopen_log(request.container_id)
        return cri.ReopenContainerLogResponse()

    async def CheckpointContainer(self, request: cri.CheckpointContainerRequest, context: Ctx) -> cri.CheckpointContainerResponse:
        raise Unimplemented("checkpointing is not supported")

    async def GetContainerEvents(self, request: cri.GetEventsRequest, context: Ctx) -> AsyncIterator[cri.ContainerEventResponse]:
        async for event in container_events(self.g, self.pods, self.containers):
            yield event


def _check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    """The kubelet's rules for a streaming request."""
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout and stderr is required")
    if tty and stderr:
        raise InvalidArgument("a terminal has no stderr of its own: ask for stdout only")


class ImageServicer(cri_grpc.ImageServiceServicer):
    """runtime.v1.ImageService."""

    def __init__(self, images: Images) -> None:
        self.images = images

    async def ListImages(self, request: cri.ListImagesRequest, context: Ctx) -> cri.ListImagesResponse:
        return cri.ListImagesResponse(images=await self.images.select(request.filter))

    async def ImageStatus(self, request: cri.ImageStatusRequest, context: Ctx) -> cri.ImageStatusResponse:
        found = await self.images.status(request.image.image)
        return cri.ImageStatusResponse(image=found) if found is not None else cri.ImageStatusResponse()

    async def PullImage(self, request: cri.PullImageRequest, context: Ctx) -> cri.PullImageResponse:
        return cri.PullImageResponse(image_ref=await self.images.pull(request.image.image, request.auth))

    async def RemoveImage(self, request: cri.RemoveImageRequest, context: Ctx) -> cri.RemoveImageResponse:
        await self.images.remove(request.image.image)
        return cri.RemoveImageResponse()

    async def ImageFsInfo(self, request: cri.ImageFsInfoRequest, context: Ctx) -> cri.ImageFsInfoResponse:
        return await self.images.fs_info()
