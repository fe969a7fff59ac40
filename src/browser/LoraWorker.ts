/**
 * The SDK's training worker (`/ui/sdk-lora-worker.js`): the training thread's entry, which runs as a
 * browser module worker as it is (it touches no Node API).
 */
import "../compute/lora/train/TrainingWorker.js"
