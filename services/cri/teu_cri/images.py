"""The CRI's ImageService through the gateway's images."""

from __future__ import annotations

import time

from teu_api.errors import InvalidArgument, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway, call, stream


def image(i: gw.ImageSummary) -> cri.Image:
    """An image as the CRI shows it; its user as a uid when numeric, else a name."""
    user = i.config.user.split(":")[0]
    out = cri.Image(id=i.id, repo_tags=list(i.repo_tags), size=i.size, spec=cri.ImageSpec(image=i.id))
    if user.isdigit():
        out.uid.value = int(user)
    else:
        out.username = user
    return out


class Images:
    """Images for a kubelet."""

    def __init__(self, gateway: Gateway) -> None:
        self.g = gateway

    async def select(self, f: cri.ImageFilter) -> list[cri.Image]:
        found = (await call(self.g.images.ListImages(gw.ListImagesRequest()))).images
        if f.image.image:
            wanted = await self.status(f.image.image)
            return [image(i) for i in found if wanted is not None and i.id == wanted.id]
        return [image(i) for i in found]

    async def status(self, ref: str) -> cri.Image | None:
        """The image ``ref`` names, None if there is none (no error: the kubelet asks before a pull)."""
        if not ref:
            raise InvalidArgument("an image is required")
        try:
            return image((await call(self.g.images.InspectImage(gw.InspectImageRequest(image=ref)))).image)
        except NotFound:
            return None

    async def pull(self, ref: str, auth: cri.AuthConfig) -> str:
        """Pulls ``ref`` (with the kubelet's credentials); the image's id."""
        if not ref:
            raise InvalidArgument("an image is required")
        creds = types_pb2.RegistryAuth(username=auth.username, password=auth.password, identity_token=auth.identity_token)
        pulled = ""
        async for msg in stream(self.g.images.Pull(gw.PullRequest(image=ref, auth=creds))):
            if msg.WhichOneof("part") == "image":
                pulled = msg.image.id
        if not pulled:
            found = await self.status(ref)
            if found is None:
                raise NotFound(f"image {ref[:200]} was not pulled")
            pulled = found.id
        return pulled

    async def remove(self, ref: str) -> None:
        """Removes the image ``ref`` names; one already gone is no error."""
        if not ref:
            raise InvalidArgument("an image is required")
        try:
            await call(self.g.images.RemoveImage(gw.RemoveImageRequest(image=ref, force=True)))
        except NotFound:
            pass

    async def fs_info(self) -> cri.ImageFsInfoResponse:
        """The bytes the images take, on the storage root's filesystem."""
        info = await call(self.g.system.Info(gw.InfoRequest()))
        usage = await call(self.g.system.DiskUsage(gw.DiskUsageRequest()))
        fs = cri.FilesystemUsage(timestamp=time.time_ns(), fs_id=cri.FilesystemIdentifier(mountpoint=info.storage_root))
        fs.used_bytes.value = usage.images_bytes
        fs.inodes_used.value = 0
        return cri.ImageFsInfoResponse(image_filesystems=[fs])
