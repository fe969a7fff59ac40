/**
 * The page's offline copy: registers the service worker (src/ui/offline, served as /ui/sw.js) and tells
 * the status panel whether this page is served by it, i.e. whether a reload works without the node.
 */
import { useEffect, useState } from "preact/hooks"

/** `kept`: the worker serves this page; `pending`: it is installing; `unavailable`: no worker here. */
export type OfflineCopy = "kept" | "pending" | "unavailable"

/**
 * Registers the worker. Service workers need a secure context (https, or localhost): elsewhere the
 * browser has none, and the page works online only.
 */
export const registerOfflineWorker = (): void => {
  if (!("serviceWorker" in navigator)) return
  navigator.serviceWorker.register("/ui/sw.js", { scope: "/ui" }).catch((error: unknown) => {
    console.warn(`the dashboard will not work offline: ${error instanceof Error ? error.message : String(error)}`)
  })
}

const currentCopy = (): OfflineCopy =>
  !("serviceWorker" in navigator) ? "unavailable" : navigator.serviceWorker.controller === null ? "pending" : "kept"

/** Whether this page has an offline copy, updated when the worker takes control. */
export const useOfflineCopy = (): OfflineCopy => {
  const [copy, setCopy] = useState<OfflineCopy>(currentCopy)
  useEffect(() => {
    if (!("serviceWorker" in navigator)) return
    const update = () => setCopy(currentCopy())
    navigator.serviceWorker.addEventListener("controllerchange", update)
    update()
    return () => navigator.serviceWorker.removeEventListener("controllerchange", update)
  }, [])
  return copy
}
